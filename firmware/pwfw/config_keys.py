# The configuration keys: defaults per chemistry, ranges, units, the chemistries' hard limits and the
# checks of a change. Needed only to build a Config, change it (`set`, `cal`, persisted overrides) or
# list it, so pwfw.config loads this module for that and drops it again: the loop holds only the int
# attributes (docs/architecture.md, Memory). On CPython pwfw.config re-exports the tables.

# (name, default lfp, default nmc, lo, hi, unit) — docs/configuration.md documents every row.
KEYS = (
    ("sample_ms", 100, 100, 20, 10000, "ms"),
    ("report_ms", 1000, 1000, 100, 60000, "ms"),
    ("capacity_mah", 100000, 100000, 100, 2000000, "mAh"),
    ("cell_ov_mv", 3650, 4200, 2000, 4500, "mV"),
    ("cell_ov_hyst_mv", 50, 50, 0, 1000, "mV"),
    ("cell_ov_ms", 1000, 1000, 0, 60000, "ms"),
    ("cell_uv_mv", 2500, 3000, 1500, 4000, "mV"),
    ("cell_uv_hyst_mv", 300, 300, 0, 1000, "mV"),
    ("cell_uv_ms", 2000, 2000, 0, 60000, "ms"),
    ("chg_tmin_dc", 0, 0, -400, 1000, "0.1 °C"),
    ("chg_tmax_dc", 450, 450, -400, 1000, "0.1 °C"),
    ("dsg_tmin_dc", -200, -200, -400, 1000, "0.1 °C"),
    ("dsg_tmax_dc", 600, 600, -400, 1000, "0.1 °C"),
    ("temp_hyst_dc", 30, 30, 0, 200, "0.1 °C"),
    ("temp_ms", 2000, 2000, 0, 60000, "ms"),
    ("dir_ma", 500, 500, 0, 100000, "mA"),
    ("oc_chg_ma", 100000, 100000, 100, 2000000, "mA"),
    ("oc_dsg_ma", 150000, 150000, 100, 2000000, "mA"),
    ("oc_hyst_ma", 5000, 5000, 0, 100000, "mA"),
    ("oc_ms", 500, 500, 0, 60000, "ms"),
    ("oc_latch", 1, 1, 0, 1, "0/1"),
    ("imbal_mv", 100, 100, 5, 2000, "mV"),
    ("imbal_hyst_mv", 20, 20, 0, 1000, "mV"),
    ("imbal_ms", 5000, 5000, 0, 600000, "ms"),
    ("ow_mv", 500, 500, 50, 10000, "mV"),
    ("ow_hyst_mv", 100, 100, 0, 10000, "mV"),
    ("ow_ms", 1000, 1000, 0, 60000, "ms"),
    ("ow_latch", 1, 1, 0, 1, "0/1"),
    ("release_ms", 1000, 1000, 0, 60000, "ms"),
    ("spike_lo_mv", 500, 500, 0, 5000, "mV"),
    ("spike_hi_mv", 5000, 5000, 1000, 6500, "mV"),
    ("spike_ms", 1000, 1000, 0, 60000, "ms"),
    ("i_gain_ppm", 0, 0, -200000, 200000, "ppm"),
    ("i_offset_ma", 0, 0, -20000, 20000, "mA"),
    ("zero_max_ma", 50, 50, 0, 20000, "mA"),
    # cell balancing (pwfw.balance; docs/configuration.md "Balancing")
    ("bal_start_mv", 3400, 4000, 2000, 4500, "mV"),
    ("bal_start_dmv", 10, 10, 1, 500, "mV"),
    ("bal_stop_dmv", 5, 5, 0, 499, "mV"),
    ("bal_dsg", 0, 0, 0, 1, "0/1"),
    ("bal_r_ohm", 55, 55, 1, 1000, "ohm"),
    # the AFE's internal balancing switch (R(CB) typ 28 ohm, docs/hardware.md): part of bal_r_ohm, and
    # what an adjacent pair's current adds to the path (I = (V1 + V2) / (bal_r_ohm + bal_rsw_ohm))
    ("bal_rsw_ohm", 28, 28, 0, 1000, "ohm"),
    ("bal_adjacent", 0, 0, 0, 1, "0/1"),
    ("bal_max_cells", 4, 4, 1, 8, "cells"),
    ("bal_tmax_dc", 500, 500, -400, 1000, "0.1 °C"),
    ("bal_die_dc", 650, 650, -400, 1200, "0.1 °C"),
    ("bal_s", 60, 60, 5, 3600, "s"),
    # end of charge: the CHG FET off this far below cell_ov_mv (pwfw.balance); 0: no charge stop
    ("chg_stop_dmv", 50, 50, 0, 1000, "mV"),
)

# The current calibration: set only by `cal` and kept in its own record (pwfw.cal), not in the state's overrides.
CAL_KEYS = ("i_gain_ppm", "i_offset_ma")

# Pairs that must stay ordered (lower key < upper key) whatever is changed.
_ORDER = (
    ("cell_uv_mv", "cell_ov_mv"),
    ("chg_tmin_dc", "chg_tmax_dc"),
    ("dsg_tmin_dc", "dsg_tmax_dc"),
    ("spike_lo_mv", "spike_hi_mv"),
    ("bal_stop_dmv", "bal_start_dmv"),
    ("bal_rsw_ohm", "bal_r_ohm"),
)

# Board-file top-level fields that are also configuration keys.
_BOARD_FIELDS = ("sample_ms", "report_ms", "capacity_mah")

CHEMISTRIES = ("lfp", "nmc")

# Series cells the BQ76952 can measure: 3 to 16 (datasheet SLUSE13, "3-series to 16-series").
CELLS_MIN = 3
CELLS_MAX = 16

# Hard limits per chemistry, narrower than KEYS' ranges: (key, lo, hi). No board file, persisted
# override or `set` gets past them (docs/configuration.md, "Hard limits"); the board adds its own
# (pwfw.limits: its current ratings and the AFE's thresholds). From the cell makers' data sheets:
# LFP: A123 ANR26650M1-B charges to 3.6 V, cut-off 2.0 V, operates -30..55 degC; EVE LF280K charges
# to 3.65 V, cut-off 2.5 V, charge 0..55 degC, discharge -20..60 degC. So cell_ov_mv <= 3750 (one
# AFE step above the 3.65 V charge voltage), cell_uv_mv >= 2000, charge window inside 0..55 degC,
# discharge inside -30..60 degC. NMC: Samsung INR18650-35E charges to 4.20 V, cut-off 2.65 V,
# charge 0..45 degC, discharge -10..60 degC; LG INR18650-MJ1 4.20 V, 2.5 V, charge 0..45 degC,
# discharge -20..60 degC. So cell_ov_mv <= 4250, cell_uv_mv >= 2500, charge inside 0..45 degC,
# discharge inside -20..60 degC. The other ends (LFP ov >= 3400, uv <= 3000; NMC ov >= 3900,
# uv <= 3500) catch a typo or the wrong chemistry.
CHEM_RANGES = {
    "lfp": (("cell_ov_mv", 3400, 3750), ("cell_uv_mv", 2000, 3000), ("chg_tmin_dc", 0, 1000),
            ("chg_tmax_dc", -400, 550), ("dsg_tmin_dc", -300, 1000), ("dsg_tmax_dc", -400, 600)),
    "nmc": (("cell_ov_mv", 3900, 4250), ("cell_uv_mv", 2500, 3500), ("chg_tmin_dc", 0, 1000),
            ("chg_tmax_dc", -400, 450), ("dsg_tmin_dc", -200, 1000), ("dsg_tmax_dc", -400, 600)),
}

def _row(key):
    for r in KEYS:
        if r[0] == key:
            return r
    return None



def init(cfg, board):
    board = board or {}
    chem = board.get("chemistry", "lfp")
    if chem not in CHEMISTRIES:
        raise ValueError("unknown chemistry %r (known: lfp, nmc)" % (chem,))
    cfg.chem = chem
    cfg.cells = board.get("cells", 16 if chem == "lfp" else 14)
    col = 1 if chem == "lfp" else 2
    for r in KEYS:
        setattr(cfg, r[0], r[col])
    over = {}
    for k in _BOARD_FIELDS:
        if k in board:
            over[k] = board[k]
    limits = board.get("limits") or {}
    if not isinstance(limits, dict):
        raise ValueError("board limits must be an object")
    over.update(limits)
    try:
        update(cfg, over)
    except ValueError as e:
        raise ValueError("board file: %s" % e)


def keys(cfg):
    return [r[0] for r in KEYS]


def get(cfg, key):
    if _row(key) is None:
        raise ValueError("unknown key %r" % (key,))
    return getattr(cfg, key)


def as_dict(cfg):
    d = {}
    for r in KEYS:
        d[r[0]] = getattr(cfg, r[0])
    return d


def overrides(cfg):
    """Keys that differ from the chemistry defaults: what to persist."""
    col = 1 if cfg.chem == "lfp" else 2
    d = {}
    for r in KEYS:
        v = getattr(cfg, r[0])
        if v != r[col] and r[0] not in CAL_KEYS:
            d[r[0]] = v
    return d


def update(cfg, changes, apply=True):
    """Apply all of changes or none: ValueError names the first problem (apply=False: check only)."""
    for key in changes:
        value = changes[key]
        r = _row(key)
        if r is None:
            raise ValueError("unknown key %r" % (key,))
        if type(value) is not int:
            raise ValueError("%s must be an integer, not %r" % (key, value))
        if value < r[3] or value > r[4]:
            raise ValueError("%s=%d out of range %d..%d %s" % (key, value, r[3], r[4], r[5]))
    for lo_key, hi_key in _ORDER:
        lo = changes.get(lo_key, getattr(cfg, lo_key))
        hi = changes.get(hi_key, getattr(cfg, hi_key))
        if lo >= hi:
            raise ValueError("%s (%d) must be below %s (%d)" % (lo_key, lo, hi_key, hi))
    for h in cfg._hard:
        if h[0] in changes:
            check_hard(h, changes[h[0]])
    if apply:
        for key in changes:
            setattr(cfg, key, changes[key])


def hard_limits(cfg, board):
    """The chemistry's and the board's hard limits (pwfw.limits, loaded for this and dropped),
    the present values checked against them, and the unlock key: ValueError names the first
    problem."""
    from pwfw.limits import load

    cfg._hard, cfg.unlock_key = load(board, cfg.chem, CHEM_RANGES[cfg.chem])
    try:
        for h in cfg._hard:
            check_hard(h, getattr(cfg, h[0]))
    except ValueError as e:
        raise ValueError("board file: %s" % e)


def check_hard(h, v):
    if not h[1] <= v <= h[2]:
        w = h[3] if v < h[1] else h[4]  # see pwfw.limits.hard_limits
        b = h[1] if v < h[1] else h[2]
        w = (w + " cells" if w in CHEMISTRIES else "board " + w + (" / 1.5" if w[0] == "c" else "")
             if "." in w else "the AFE's %s %d" % (w, b))
        raise ValueError("%s=%d beyond its hard limit %d..%d %s (%s)" % (
            h[0], v, h[1], h[2], _row(h[0])[5].replace("\u00b0", "deg"), w))


def load_overrides(cfg, d):
    """Apply persisted overrides one by one, skipping bad ones (a newer/older firmware may differ).
    Returns the list of rejected keys; never raises on bad data."""
    bad = []
    if not isinstance(d, dict):
        return ["<not a dict>"]
    for key in d:
        try:
            update(cfg, {key: d[key]})
        except ValueError:
            bad.append(key)
    return bad
