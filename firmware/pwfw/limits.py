# Hard limits a board adds to its chemistry's (pwfw.config_keys.CHEM_RANGES): the power path's current
# ratings, the current sensor's headroom, and the AFE's own thresholds as the part applies them, so
# the firmware's protections always act before the AFE's (the AFE is the backstop, docs/hardware.md
# "Limits you can't talk past"). Loaded by pwfw.config.Config.hard_limits (on a board: pwfw.pack, while
# the AFE set-up's modules, which it uses, are loaded) and dropped again.
from pwfw.compat import const

# The board file's "unlock_key" (printable ASCII without spaces), or this documented default.
DEFAULT_UNLOCK_KEY = "packwatch"
UNLOCK_KEY_MIN = 4
UNLOCK_KEY_MAX = 32
_HEADROOM_PCT = const(150)  # pwfw.ina228.HEADROOM_PCT (a T0 test holds them equal): full scale >= 1.5 x limit

# (firmware key, AFE key, side): side 1 the firmware's limit stays at or below the AFE's threshold
# (it trips first on the way up), -1 at or above it (first on the way down).
_AFE_PAIRS = (
    ("cell_ov_mv", "cov_mv", 1),
    ("cell_uv_mv", "cuv_mv", -1),
    ("chg_tmax_dc", "otc_dc", 1),
    ("chg_tmin_dc", "utc_dc", -1),
    ("dsg_tmax_dc", "otd_dc", 1),
    ("dsg_tmin_dc", "utd_dc", -1),
    ("oc_chg_ma", "occ_ma", 1),
    ("oc_dsg_ma", "ocd1_ma", 1),
)


def hard_limits(board, chem, chem_ranges, afe=True):
    """((key, lo, hi, why lo, why hi), ...) for this board: each key's range from its chemistry
    (chem_ranges), narrowed by the board's ratings ("ratings": {"chg_ma", "dsg_ma"}), the current
    sensor's full scale (current.max_ma / 1.5) and the AFE's thresholds (afe.protect, quantised as
    the part applies them: applied() below)."""
    from pwfw.config_keys import _row

    board = board or {}
    # why a bound is where it is, as a name that is interned anyway (no string per bound on the heap):
    # the chemistry, a board-file key ("ratings.chg_ma", "current.max_ma") or the AFE setting's name;
    # pwfw.config_keys.check_hard words it
    lim = {}
    for key, lo, hi in chem_ranges:
        lim[key] = [lo, hi, chem, chem]

    def narrow(key, side, v, why):
        if key not in lim:
            r = _row(key)
            lim[key] = [r[3], r[4], "range", "range"]  # (never shown: the key's own range is checked first)
        e = lim[key]
        if side > 0 and v < e[1]:
            e[1] = v
            e[3] = why
        elif side < 0 and v > e[0]:
            e[0] = v
            e[2] = why

    rat = board.get("ratings") or {}
    for k in rat:
        if k not in ("chg_ma", "dsg_ma") or type(rat[k]) is not int or rat[k] < 100:
            raise ValueError("ratings.%s=%r: chg_ma, dsg_ma >= 100 mA" % (k, rat[k]))
    if "chg_ma" in rat:
        narrow("oc_chg_ma", 1, rat["chg_ma"], "ratings.chg_ma")
    if "dsg_ma" in rat:
        narrow("oc_dsg_ma", 1, rat["dsg_ma"], "ratings.dsg_ma")
    cur = board.get("current") or {}
    mx = cur.get("max_ma")
    if type(mx) is int:
        top = mx * 100 // _HEADROOM_PCT
        narrow("oc_chg_ma", 1, top, "current.max_ma")
        narrow("oc_dsg_ma", 1, top, "current.max_ma")
    if afe and "afe" in board:
        from pwfw.afe_config import afe_protect

        p = afe_protect(board)
        shunt = cur.get("shunt_uohm")
        for key, afe_key, side in _AFE_PAIRS:
            if afe_key.endswith("_ma") and type(shunt) is not int:
                continue  # no shunt, no current thresholds (the AFE set-up refuses such a board)
            narrow(key, side, applied(afe_key, p[afe_key], shunt), afe_key)
    out = []
    for key in lim:
        e = lim[key]
        out.append((key, e[0], e[1], e[2], e[3]))
    return tuple(out)


def applied(name, v, shunt_uohm):
    """The threshold the part applies when AFE setting `name` is asked as v (entries() encodes it so):
    the code decoded back, rounded toward the firmware's side (an upper threshold down, a lower one
    up), so a firmware limit at it trips no later than the part: cov_mv 3750 -> code 74 -> 3744 mV (pwfw.bq76952_units' encoders)."""
    from pwfw.bq76952_units import CUV_MAX, CUV_MIN, OCC_MAX, cell_code, oc_code, temp_code, temp_dc

    if name == "cov_mv":
        return cell_code(v) * 506 // 10
    if name == "cuv_mv":
        return -(-cell_code(v, CUV_MIN, CUV_MAX) * 506 // 10)
    if name == "occ_ma":
        return oc_code(v, shunt_uohm, OCC_MAX) * 2000000 // shunt_uohm
    if name == "ocd1_ma" or name == "ocd2_ma":
        return oc_code(v, shunt_uohm) * 2000000 // shunt_uohm
    if name[-3:] == "_dc":
        return temp_dc(temp_code(v) & 0xFF)
    return v


def unlock_key(board):
    key = board.get("unlock_key", DEFAULT_UNLOCK_KEY)
    if type(key) is not str or not UNLOCK_KEY_MIN <= len(key) <= UNLOCK_KEY_MAX or [1 for c in key if not "!" <= c <= "~"]:
        raise ValueError("board file: unlock_key must be %d..%d printable characters without spaces"
                         % (UNLOCK_KEY_MIN, UNLOCK_KEY_MAX))
    return key


def load(board, chem, chem_ranges):
    """(hard_limits(), unlock_key()) for pwfw.config.Config; then (on MicroPython) this module and
    what it loaded are dropped again."""
    from pwfw.compat import MICROPYTHON

    try:
        board = board or {}
        return hard_limits(board, chem, chem_ranges), unlock_key(board)
    finally:
        if MICROPYTHON:
            import sys

            import pwfw

            for m in ("limits", "afe_config", "bq76952_units"):
                sys.modules.pop("pwfw." + m, None)
                try:
                    delattr(pwfw, m)
                except (AttributeError, KeyError):
                    pass
