# Current calibration (docs/hardware.md "Calibrating the current"): `cal zero` and `cal current <amps>`,
# and the calibration record beside the persisted state: its own two slot files in pwfw.store's format
# (magic, length, sequence, CRC-32), written only by a `cal` command, so a SoC save can never tear it.
# Loaded on demand (boot, a `cal` command) and dropped afterwards: nothing here runs per sample.
from pwfw.compat import const
from pwfw.store import Store

PATHS = ("cal_a.bin", "cal_b.bin")
VERSION = 1
_MIN_REF_MA = const(5000)  # a clamp meter reads DC to about +-(2 % + 50 mA): below 5 A the gain is not worth taking
_MAX_GAIN_PPM = const(200000)  # Config's i_gain_ppm range: a sensor 20 % off is a wiring or shunt error, not gain


def store():
    return Store(PATHS[0], PATHS[1])


def source(board):
    return board["current"]["source"]


def load(cfg, board):
    """Apply the newest valid calibration record to cfg. Returns 'none' (never calibrated: defaults),
    'ok', or 'bad' (a slot file holds no valid record and no other does, or the record is out of range
    or for another current sensor: refused, the defaults offset 0 / gain 0 apply)."""
    st = store()
    d = st.load()
    if d is None:
        return "bad" if st.corrupt else "none"
    try:
        if d.get("v") != VERSION or d.get("src") != source(board):
            raise ValueError("calibration for another sensor")
        off = d["off_ma"]
        g = d["gain_ppm"]
        if type(off) is not int or type(g) is not int:
            raise ValueError("calibration values")
        cfg.update({"i_offset_ma": off, "i_gain_ppm": g})  # range-checked like any key
    except (ValueError, TypeError, KeyError, AttributeError):
        cfg.update({"i_offset_ma": 0, "i_gain_ppm": 0})
        return "bad"
    return "ok"


def save(cfg, board, ref_ma=None, raw_ma=None):
    """Write cfg's calibration as a new record; False when the filesystem failed."""
    d = {"v": VERSION, "src": source(board), "off_ma": cfg.i_offset_ma, "gain_ppm": cfg.i_gain_ppm}
    if ref_ma is not None:
        d["ref_ma"] = ref_ma
        d["raw_ma"] = raw_ma
    return store().save(d)


def parse_amps(s):
    """'12', '-7.25', '+3.5' -> mA (int), without floats: a clamp meter shows at most 3 decimals."""
    t = s
    neg = t[:1] == "-"
    if t[:1] in ("-", "+"):
        t = t[1:]
    whole, _, frac = t.partition(".")
    if not (whole or frac) or (whole and not whole.isdigit()) or (frac and not frac.isdigit()) or len(frac) > 3:
        raise ValueError("not a current in A (e.g. 12.5 or -20): " + s)
    ma = int(whole or "0") * 1000 + int((frac + "000")[:3])
    return -ma if neg else ma


def gain_ppm(ref_ma, x_ma):
    """The gain that makes x_ma (offset already removed) read ref_ma: (ref / x - 1) * 1e6, rounded."""
    n = (ref_ma - x_ma) * 1000000
    d = x_ma
    if d < 0:
        n, d = -n, -d
    return (2 * n + d) // (2 * d)  # round half up


def current(cfg, ref_ma, raw_ma):
    """Check a reference current against the sensor's mean raw reading; returns the new gain (ppm) or
    raises ValueError saying what to do."""
    if ref_ma > -_MIN_REF_MA and ref_ma < _MIN_REF_MA:
        raise ValueError("reference %d mA is too small: calibrate at 5 A or more (more is better)" % ref_ma)
    x = raw_ma - cfg.i_offset_ma
    if x == 0 or (x > 0) != (ref_ma > 0):
        raise ValueError("the pack reads %d mA but the meter %d mA: opposite signs. + is charging (current "
                         "into the pack +): turn the clamp round or give the meter's value with the other "
                         "sign" % (x, ref_ma))
    g = gain_ppm(ref_ma, x)
    if g > _MAX_GAIN_PPM or g < -_MAX_GAIN_PPM:
        raise ValueError("the pack reads %d mA for the meter's %d mA: more than 20 %% apart; check the "
                         "shunt value in the board file, the clamp around one conductor only, and `cal zero` "
                         "first" % (x, ref_ma))
    return g
