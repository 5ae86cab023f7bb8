# The AFE's protection settings and power path as a board file gives them: defaults per chemistry,
# ranges, overrides. Read while configuring the AFE (pwfw.bq76952_units.plan) and by the host's
# board-file schema, never by the running loop, so the firmware does not keep it in its heap.


# The AFE's own protections per chemistry (board file "afe": {"protect": {...}} overrides them):
# (name, default lfp, default nmc, lo, hi, unit). They sit beyond the firmware's limits above, so
# the firmware acts first and the AFE is the hardware backstop (docs/hardware.md, "AFE protections",
# gives the reasoning and the codes each one becomes). Ranges are what the BQ76952 can be set to
# (TRM SLUUBY2B 13.6) for the currents with a 0.25-2 mOhm shunt.
AFE_KEYS = (
    ("cov_mv", 3750, 4250, 1012, 5566, "mV"),
    ("cov_hyst_mv", 100, 100, 50, 1012, "mV"),
    ("cov_ms", 1000, 1000, 4, 6755, "ms"),
    ("cuv_mv", 2500, 2800, 1012, 4554, "mV"),
    ("cuv_hyst_mv", 300, 300, 50, 1012, "mV"),
    ("cuv_ms", 2000, 2000, 4, 6755, "ms"),
    ("occ_ma", 112000, 112000, 1000, 1000000, "mA"),
    ("occ_ms", 400, 400, 10, 425, "ms"),
    ("ocd1_ma", 176000, 176000, 1000, 1000000, "mA"),
    ("ocd1_ms", 400, 400, 10, 425, "ms"),
    ("ocd2_ma", 252000, 252000, 1000, 1000000, "mA"),
    ("ocd2_ms", 20, 20, 10, 425, "ms"),
    ("scd_ma", 400000, 400000, 5000, 2000000, "mA"),
    ("scd_us", 120, 120, 0, 450, "us"),
    ("scd_recov_s", 5, 5, 1, 255, "s"),
    ("otc_dc", 450, 450, -400, 1200, "0.1 °C"),
    ("otc_recov_dc", 400, 400, -400, 1200, "0.1 °C"),
    ("otd_dc", 600, 600, -400, 1200, "0.1 °C"),
    ("otd_recov_dc", 550, 550, -400, 1200, "0.1 °C"),
    ("otf_dc", 850, 850, -400, 1200, "0.1 °C"),
    ("otf_recov_dc", 700, 700, -400, 1200, "0.1 °C"),
    ("utc_dc", 0, 0, -400, 1200, "0.1 °C"),
    ("utc_recov_dc", 50, 50, -400, 1200, "0.1 °C"),
    ("utd_dc", -200, -200, -400, 1200, "0.1 °C"),
    ("utd_recov_dc", -150, -150, -400, 1200, "0.1 °C"),
    ("temp_s", 2, 2, 0, 255, "s"),
    ("recovery_s", 3, 3, 0, 255, "s"),
    ("sleep", 0, 0, 0, 1, "0/1"),
)

# The power path (board file "afe": {"fets": {...}}): how the AFE's CHG/DSG drivers are wired.
FET_TOPOLOGIES = ("series", "parallel")  # back-to-back on one path (FET Options SFET) or two paths
FET_DEFAULTS = {"topology": "series", "pchg": False, "pdsg": False, "contactor_pin": None}


def afe_protect(board):
    """The AFE protection settings for a board: the chemistry's defaults with the board's
    "afe.protect" overrides, range-checked; ValueError names the first bad one."""
    board = board or {}
    col = 1 if board.get("chemistry", "lfp") == "lfp" else 2
    d = {}
    for r in AFE_KEYS:
        d[r[0]] = r[col]
    over = (board.get("afe") or {}).get("protect") or {}
    if not isinstance(over, dict):
        raise ValueError("afe.protect must be an object")
    for k in over:
        r = None
        for row in AFE_KEYS:
            if row[0] == k:
                r = row
        v = over[k]
        if r is None:
            raise ValueError("afe.protect: unknown key %r" % (k,))
        if type(v) is not int or not r[3] <= v <= r[4]:
            raise ValueError("afe.protect.%s=%r out of range %d..%d %s" % (k, v, r[3], r[4], r[5]))
        d[k] = v
    return d


# What the firmware does when it cannot protect (board file "failsafe": {...}; docs/hardware.md,
# "Supervision"): (name, default lfp, default nmc, lo, hi, unit). Deep under-voltage: a cell below
# shutdown_mv with no charge current for shutdown_s sends the AFE to SHUTDOWN. LFP 2000 mV / NMC
# 2500 mV sit below the firmware's and the AFE's CUV (2500/2479, 2800/2783 mV): only a pack the
# cut-off did not stop (self-discharge, the MCU's own drain) gets there.
FAILSAFE_KEYS = (
    ("shutdown_mv", 2000, 2500, 1000, 3500, "mV"),
    ("shutdown_s", 600, 600, 1, 86400, "s"),
)
# keep_dsg: with the sensors lost (every temperature, the current saturated) the AFE's DSG FET and
# the relay stay on, so the load keeps power; default off: nothing conducts.
FAILSAFE_DEFAULTS = {"keep_dsg": False}


def failsafe(board):
    """(keep_dsg, shutdown_mv, shutdown_ms) for a board: the defaults with its "failsafe" overrides,
    range-checked; ValueError names the first bad one."""
    board = board or {}
    col = 1 if board.get("chemistry", "lfp") == "lfp" else 2
    over = board.get("failsafe") or {}
    if not isinstance(over, dict):
        raise ValueError("failsafe must be an object")
    d = {"keep_dsg": FAILSAFE_DEFAULTS["keep_dsg"]}
    for r in FAILSAFE_KEYS:
        d[r[0]] = r[col]
    for k in over:
        v = over[k]
        if k == "keep_dsg":
            if type(v) is not bool:
                raise ValueError("failsafe.keep_dsg=%r is not true or false" % (v,))
        else:
            r = None
            for row in FAILSAFE_KEYS:
                if row[0] == k:
                    r = row
            if r is None:
                raise ValueError("failsafe: unknown key %r" % (k,))
            if type(v) is not int or not r[3] <= v <= r[4]:
                raise ValueError("failsafe.%s=%r out of range %d..%d %s" % (k, v, r[3], r[4], r[5]))
        d[k] = v
    return d["keep_dsg"], d["shutdown_mv"], d["shutdown_s"] * 1000
