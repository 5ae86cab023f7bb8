# Cell model for pwfw.soc: JSON (docs/cell-model.md) -> integer tables on a fixed SoC grid.
# Floats are used here only, at init. Kept apart from soc.py so each file compiles in a small heap.
from array import array

# fixed SoC grid of the integer tables (pm): fine at both knees
GRID_PM = (0, 5, 10, 20, 30, 50, 70, 100, 130, 160, 200, 250, 300, 350, 400, 450, 500, 550, 600, 650,
           700, 750, 800, 850, 900, 930, 950, 970, 980, 990, 995, 1000)


def _interp_f(xs, ys, x):
    # float interpolation, used at init only
    if x <= xs[0]:
        return ys[0]
    for j in range(1, len(xs)):
        if x <= xs[j]:
            f = (x - xs[j - 1]) / (xs[j] - xs[j - 1])
            return ys[j - 1] + f * (ys[j] - ys[j - 1])
    return ys[-1]


class Model:
    """A cell model as integer tables on GRID_PM (built by load_model; floats only here). No methods:
    an instance does not hold this module's code, so pwfw.soc drops the module once the model is
    built (docs/architecture.md, Memory)."""


def _build(self, d):
    sp = d["soc_pct"]
    xs = [float(x) * 10 for x in sp]
    if len(xs) < 2 or any(xs[j] <= xs[j - 1] for j in range(1, len(xs))):
        raise ValueError("model: soc_pct must be increasing")
    self.chemistry = d.get("chemistry", "?")
    self.cap_mah = int(float(d["capacity_ah"]) * 1000)
    n = len(GRID_PM)
    self.soc = array("i", [p * 1000 for p in GRID_PM])
    self.mid = array("i", [0] * n)
    self.half = array("i", [0] * n)
    self.r0 = array("i", [0] * n)
    self.r1 = array("i", [0] * n)
    self.r2 = array("i", [0] * n)
    chg = [float(v) for v in d["ocv_charge_v"]]
    dis = [float(v) for v in d["ocv_discharge_v"]]
    r0 = [float(v) for v in d["r0_ohm"]]
    rc = d.get("rc", [])
    if len(chg) != len(xs) or len(dis) != len(xs) or len(r0) != len(xs):
        raise ValueError("model: tables must have the length of soc_pct")
    taus = []
    last = -1
    for j in range(n):
        x = GRID_PM[j]
        c = _interp_f(xs, chg, x)
        s = _interp_f(xs, dis, x)
        if s > c:
            c = s = (c + s) / 2
        m = int((c + s) * 5e5)
        if m <= last:  # strictly increasing so the inverse exists
            m = last + 1
        last = m
        self.mid[j] = m
        self.half[j] = int((c - s) * 5e5)
        self.r0[j] = int(_interp_f(xs, r0, x) * 1e6)
    for k in range(2):
        if k < len(rc):
            tab = self.r1 if k == 0 else self.r2
            for j in range(n):
                tab[j] = int(_interp_f(xs, [float(v) for v in rc[k]["r_ohm"]], GRID_PM[j]) * 1e6)
            taus.append(int(float(rc[k]["tau_s"]) * 1000))
        else:
            taus.append(1000)
    self.tau1_ms = max(100, taus[0])
    self.tau2_ms = max(100, taus[1])
    self.gamma = int(float(d.get("hysteresis", {}).get("gamma", 50.0)))
    lim = d.get("limits", {})
    self.v_full_uv = int(float(lim.get("v_full", chg[-1] - 0.01)) * 1e6)
    self.v_cut_uv = int(float(lim.get("v_cutoff", dis[0] + 0.05)) * 1e6)
    self.tail_c_pm = int(float(lim.get("tail_c", 0.05)) * 1000)
    self.ocv_err_uv = int(float(d.get("ocv_err_mv", 3.0)) * 1000)
    # first boot: how far these tables may be from the user's cell (generic model: tens of mV)
    self.boot_err_uv = max(self.ocv_err_uv, int(float(d.get("ocv_boot_err_mv", 0.0)) * 1000))
    # ... and on every later correction of the pack: a table that may be tens of mV off the cell at
    # first boot is as far off afterwards (only fitted models make this the fit residual)
    self.cell_err_uv = self.boot_err_uv
    # 1-sigma of the tables' SoC axis against the user's cell (a generic model: its knees lie a few %
    # elsewhere than the cell's); fitted models: 0
    self.soc_err_ppm = min(200000, int(float(d.get("table_soc_err_pct", 0.0)) * 10000))
    # typical OCV slope (uV per pm) over 20…80 %: where the slow RC branch was fitted
    self.g_mid = max(1, (self.mid[GRID_PM.index(800)] - self.mid[GRID_PM.index(200)]) // 600)
    # the top of charge (pwfw.soc._innovations): the charge-branch OCV from which the table rises >= 10 mV
    # per % up to full, from 90 % on (past the upper knee: not a plateau near the top, where the highest of
    # 16 cells' sensor offsets reads tens of %); none: never
    j = n - 1
    while j > 0 and GRID_PM[j - 1] >= 900 and (self.mid[j] + self.half[j] - self.mid[j - 1] - self.half[j - 1]
                                                >= 1000 * (GRID_PM[j] - GRID_PM[j - 1])):
        j -= 1
    self.v_top_uv = self.mid[j] + self.half[j] if j < n - 1 else 1 << 29
    for j in range(1, n):  # interpolation products must stay small ints
        if abs(self.mid[j] - self.mid[j - 1]) * (GRID_PM[j] - GRID_PM[j - 1]) * 10 >= 1 << 29:
            raise ValueError("model: OCV step too large between grid points")


def load_model(src):
    """Model from a JSON path or a dict (floats allowed here: init only)."""
    if isinstance(src, Model) or hasattr(src, "mid"):  # built already (maybe by a dropped copy of this module)
        return src
    if isinstance(src, str):
        import json
        with open(src) as f:
            src = json.load(f)
    if not isinstance(src, dict):
        raise ValueError("model: expected a path or a dict")
    m = Model()
    _build(m, src)
    return m
