"""Pack physics for the virtual board: series cells as equivalent circuits, hysteresis, heat.

Per cell: OCV(SoC) on a charge and a discharge branch (tables derived from PyBaMM runs by
hil/tools/derive_tables.py, so the plant is not the estimator's own model) mixed by a one-state
hysteresis h in [-1, 1] that moves towards sign(I) with charge throughput; R0 plus two RC pairs;
self-discharge; a lumped thermal node per cell (I^2 R heating, to ambient and to the neighbours).
Cells differ in capacity, resistance, self-discharge and initial SoC (seeded).

The runner calls `step()` every 100 ms of virtual time, so the hot path is a handful of numpy ops on
n-cell arrays with per-dt coefficients cached; heat and R(T) are updated once per virtual second.
Current sign: + = charging.

The power path: the relay (or contactor) and the AFE's CHG/DSG FETs, as the step request of the
virtual board carries them (docs/architecture.md); which direction passes is the chip model's own
rule (hil.chips.bq76952_fsm.path_passes). A FET the AFE opens inside a step (its SCD/OCD/OCC are
timed in us) is accounted when the next step says so (`cut_us`): see `_interrupt`. Fault events
(`short_circuit`, `surge`, `ripple`) add to what the profile asks; `interruptions` logs every time
the path stopped a current that was flowing, in plant us.

Balancing: the step request's `bal` mask (bit k = cell k; hal_sim maps the AFE's inputs to cells)
bleeds each of those cells through the board's balancing resistor (`bal_r_ohm`, the board file's
`limits` key, default in pwfw.config): I = V / R of that cell alone, inside the pack, so the pack
current and the other cells do not see it. A run of adjacent bled cells is one loop through the two
outer input resistors and each cell's internal switch (`bal_rsw_ohm`, a part of `bal_r_ohm`; TI E2E
1505209): I = sum(V) / (2 Rin + len x Rsw) = sum(V) / (bal_r_ohm + (len - 1) bal_rsw_ohm), the same
current in each cell of the run. `bled_as` counts each cell's bled charge (A.s); the
resistors' heat V^2 / R warms the board (the BQ76952's die and its TS3 area sensor).
"""
import csv
import json
import math
from pathlib import Path

import numpy as np

from hil.chips.bq76952_fsm import path_passes

DATA = Path(__file__).resolve().parent / "data"
CHEMISTRY = {"lfp": 16, "nmc": 14}
THERMAL_MS = 2000          # heat and R(T) update period (thermal time constants are hours)
_C_TH_PER_AH = 20.0        # J/K per Ah: ~2 kg at ~1 J/(g K) for a 100 Ah prismatic cell
_G_AMB = 0.30              # W/K from an inner cell to the air in the enclosure
_G_AMB_EDGE = 0.45         # end cells see more air
_G_NB = 1.0                # W/K between neighbouring cells
_R_TEMP_K = 0.02           # R(T) = R25 * exp(-k (T - 25)): about x1.65 at 0 C, x0.5 at 60 C
_SELF_DIS_MONTH = 0.02     # fraction of capacity per month, mean
_MONTH_S = 30 * 86400.0
# the board under balancing: its rise over the ambient relaxes to P * _BOARD_K_W with _BOARD_TAU_S
# (a small BMS board with the AFE and its resistors: ~15 K/W, minutes; our assumption, not measured)
_BOARD_K_W = 15.0
_BOARD_TAU_S = 300.0
# sensor map of temps_dc: which cell (index as a fraction of the stack) or the ambient each sees
SENSORS = ("mcu_ntc0", "mcu_ntc1", "mcu_ntc2", "bq_ts1", "bq_ts2", "bq_ts3", "bq_die")


def load_table(chemistry):
    """The derived table, with a steep guard segment past each end so SoC slightly outside 0..1
    (over-charge, over-discharge) keeps moving the voltage instead of clamping it."""
    t = json.loads((DATA / ("ocv_%s.json" % chemistry)).read_text())
    soc = np.array(t["soc"], float)
    chg = np.array(t["ocv_chg"], float)
    dis = np.array(t["ocv_dis"], float)
    soc = np.concatenate([[-0.1], soc, [soc[-1] + 0.1]])
    chg = np.concatenate([[chg[0] - 1.0], chg, [chg[-1] + 1.0]])
    dis = np.concatenate([[dis[0] - 1.0], dis, [dis[-1] + 1.0]])
    t["grid"], t["mid"], t["half"] = soc, (chg + dis) / 2, (chg - dis) / 2
    return t


def sensor_cells(n_cells):
    """Cell index each sensor sees; None = the ambient (bq_ts3 on the FET/busbar area, the die)."""
    return (0, n_cells // 2, n_cells - 1, n_cells // 4, (3 * n_cells) // 4, None, None)


def truth_row(t_ms, i_a, cells_v, temp_c, soc):
    """One row of the truth log: t_s, current_a, cell01_v.. (1-based like the AFE inputs), temp_c
    (hottest cell), soc (pack, min-limited)."""
    row = {"t_s": t_ms / 1000.0, "current_a": float(i_a)}
    for k, v in enumerate(cells_v):
        row["cell%02d_v" % (k + 1)] = float(v)
    row["temp_c"] = float(temp_c)
    row["soc"] = float(soc)
    return row


class Plant:
    """A series pack. Hot-path state lives in plain Python lists: for 16 cells one loop of float ops
    is faster than ~20 numpy calls at ~1.5 us each (see bench/hil/bench_plant.py)."""

    def __init__(self, chemistry="lfp", n_cells=None, seed=0, profile=None, capacity_ah=100.0,
                 ambient_c=25.0, spread=True, soc0=0.6, h0=-1.0, bal_r_ohm=None, bal_rsw_ohm=None):
        if chemistry not in CHEMISTRY:
            raise ValueError("chemistry must be one of %s" % sorted(CHEMISTRY))
        n = n_cells or CHEMISTRY[chemistry]
        self.chemistry, self.n_cells, self.seed = chemistry, n, seed
        self.profile = profile
        self.capacity_ah = float(capacity_ah)
        self.table = tab = load_table(chemistry)
        # the table on a uniform 1e-3 SoC grid, so the hot loop indexes instead of searching
        self._s0 = float(tab["grid"][0])
        fine = np.arange(self._s0, float(tab["grid"][-1]) + 1e-9, 1e-3)
        self._mid = np.interp(fine, tab["grid"], tab["mid"]).tolist()
        self._half = np.interp(fine, tab["grid"], tab["half"]).tolist()
        self._jmax = len(fine) - 2
        rng = np.random.default_rng(seed)
        sd = (lambda s: rng.normal(1.0, s, n)) if spread else (lambda s: np.ones(n))
        scale = tab["ref_capacity_ah"] / self.capacity_ah  # same C-rate behaviour as the test cell
        self.cap_ah = self.capacity_ah * np.clip(sd(0.015), 0.9, 1.1)
        self.r0_25 = tab["r0_ohm"] * scale * np.clip(sd(0.08), 0.7, 1.5)
        rfac = np.clip(sd(0.08), 0.7, 1.5)
        self.r12_25 = np.array([[r * scale for r, _ in tab["rc"]]]).T * rfac
        self.tau12 = np.array([[tau for _, tau in tab["rc"]]]).T * np.ones(n)
        self.self_dis = _SELF_DIS_MONTH / _MONTH_S * np.clip(sd(0.5), 0.2, 3.0)
        self.hyst_soc = tab["hyst_soc"]
        self._hyst_as = self.capacity_ah * 3600.0 * self.hyst_soc
        # packs are top-balanced at assembly: equal charge missing from full (so cells with less
        # capacity sit at a lower SoC), plus a small imbalance
        soc = 1.0 - (1.0 - np.asarray(soc0, float)) * self.capacity_ah / self.cap_ah
        soc = soc + (rng.normal(0.0, 0.003, n) if spread else 0.0)
        self._soc = np.clip(soc, 0.0, 1.0).tolist()
        self._h = [float(h0) if self.hyst_soc > 0 else 0.0] * n
        self._v1 = [0.0] * n
        self._v2 = [0.0] * n
        self.ambient_c = float(ambient_c)
        self.temp_c = np.full(n, self.ambient_c)
        g = np.full(n, _G_AMB)
        g[0] = g[-1] = _G_AMB_EDGE
        self._g_amb = g
        self.t_ms = 0
        self.i_a = 0.0  # mean current of the last step (what moved charge), A
        self.i_inst_a = 0.0  # the current at the step's end (the sample instant): differs under ripple or a cut
        self.relay_closed = True
        self.chg = self.dsg = True  # the AFE's CHG/DSG FETs as the last step request had them
        self.bal_mask = 0  # cells being balanced (bit k = cell k), from the step request: see _bleed
        from pwfw.config import KEYS  # the firmware's defaults for the board's balancing path

        if bal_r_ohm is None:
            bal_r_ohm = [k[1] for k in KEYS if k[0] == "bal_r_ohm"][0]
        if bal_rsw_ohm is None:
            bal_rsw_ohm = [k[1] for k in KEYS if k[0] == "bal_rsw_ohm"][0]
        if not bal_r_ohm > 0:
            raise ValueError("bal_r_ohm must be > 0, got %r" % (bal_r_ohm,))
        if not 0 <= bal_rsw_ohm < bal_r_ohm:
            raise ValueError("bal_rsw_ohm must be in 0..bal_r_ohm, got %r" % (bal_rsw_ohm,))
        self.bal_r_ohm = float(bal_r_ohm)
        self.bal_rsw_ohm = float(bal_rsw_ohm)
        self.bled_as = [0.0] * n  # charge bled per cell through its balancing resistor, A.s
        self._bal_j = 0.0  # heat of the balancing resistors since the last thermal update, J
        self.board_rise_c = 0.0  # the board over the ambient (balancing heat)
        self._dt_ms = 0  # length of the last step (a cut inside it is accounted on the next one)
        self._faults = []  # active fault loads: [kind, amps or ohm, unit, end_ms]
        self._ripple = None  # (amps_pk, rad per ms)
        self._onset_us = -1  # plant time the last fault load started (until an interruption takes it)
        # (onset_us or -1, interruption_us, amps that were flowing, how): 'afe' = a FET opened inside a
        # step (at its us), 'path' = relay or FET open at a step's start; plant time in us
        self.interruptions = []
        self.fault_log = []  # (onset_us, kind, args) of every fault event applied
        self._q_heat = 0.0        # sum of i^2 dt since the last thermal update
        self._heat_ms = 0
        self._coef = {}
        self._temps = None
        self._temps_list = None  # (temps_dc, its list): see reply_fields
        self._update_resistance()
        self._advance(0.0, self._coefs(0))

    # --- physics -------------------------------------------------------------------------------
    def _update_resistance(self):
        f = np.exp(-_R_TEMP_K * (self.temp_c - 25.0))
        self.r0 = self.r0_25 * f
        self.r12 = self.r12_25 * f
        self.r0_stack = float(self.r0.sum())
        self._r0 = self.r0.tolist()
        for c in self._coef.values():
            self._rc_gains(c)
        self._temps = None

    def _coefs(self, dt_ms):
        c = self._coef.get(dt_ms)
        if c is None:
            dt = dt_ms / 1000.0
            e12 = np.exp(-dt / self.tau12)
            c = [dt, (dt / (self.cap_ah * 3600.0)).tolist(), (self.self_dis * dt).tolist(),
                 e12[0].tolist(), e12[1].tolist(), None, None, 1.0 - e12]
            self._coef[dt_ms] = c
            self._rc_gains(c)
        return c

    def _rc_gains(self, c):
        g12 = self.r12 * c[7]
        c[5], c[6] = g12[0].tolist(), g12[1].tolist()

    def step(self, dt_ms, relay_closed=True, chg=True, dsg=True, cut_us=-1, bal_mask=0):
        """Advance dt_ms of virtual time. An open relay disconnects charger and load (current 0); CHG
        off blocks charge, DSG off discharge (path_passes). cut_us >= 0: an AFE FET opened that many
        us into the previous step (chg/dsg are the state after it): that step is corrected first."""
        if cut_us >= 0:
            self._interrupt(cut_us, chg, dsg)
        self.relay_closed = relay_closed
        self.chg, self.dsg = chg, dsg
        self.bal_mask = bal_mask
        t0 = self.t_ms
        # the profile runs even with the relay open, so a charger sees the battery disappear
        i = self.profile.current(t0, self) if self.profile is not None else 0.0
        if self._faults:
            i += self._fault_amps(t0)
        ie = i
        if self._ripple is not None:  # exact mean over the step; the instantaneous value at its end
            a, w = self._ripple
            if dt_ms:
                i += a * (math.cos(w * t0) - math.cos(w * (t0 + dt_ms))) / (w * dt_ms)
            ie += a * math.sin(w * (t0 + dt_ms))
        want = i
        if not relay_closed:
            i = ie = 0.0
        elif not (chg and dsg):
            if not path_passes(i, chg, dsg):
                i = ie = 0.0
        if not i and want and self.i_inst_a:  # the path stopped a current that was flowing
            self._log_cut(t0 * 1000, self.i_inst_a, "path")
        self.i_a = i
        self.i_inst_a = ie
        self._dt_ms = dt_ms
        c = self._coefs(dt_ms)
        self._advance(i, c)
        if bal_mask:
            self._bleed(bal_mask, c)
        self._q_heat += i * i * c[0]
        self._heat_ms += dt_ms
        self.t_ms += dt_ms
        if self._heat_ms >= THERMAL_MS:
            self._thermal()

    def _interrupt(self, cut_us, chg, dsg):
        """An AFE FET opened cut_us into the last step: from then on only what path_passes lets
        through flowed. Exact for the charge moved (SoC) and the I^2 t heat; approximated: the RC
        voltages get the step-mean change of current (not the response to a step inside the step),
        the hysteresis state is not redone, heat already turned into temperature by a thermal update
        in that step stays, and the step's reply (cells, current) had gone out before the cut was
        known (hal_sim corrects the chips' current for that step from the chip's own FET state)."""
        i = self.i_a
        dt_us = self._dt_ms * 1000
        if not i:
            return
        j = path_passes(i, chg, dsg) if self.relay_closed else 0.0
        if j == i:
            return
        cut_us = min(cut_us, dt_us)  # at the step's very end (a delay that ends with the step)
        frac = (dt_us - cut_us) / dt_us if dt_us else 0.0  # share of the step after the cut
        di = (j - i) * frac
        dt, a, _, _, _, g1, g2, _ = self._coefs(self._dt_ms)
        soc, v1, v2 = self._soc, self._v1, self._v2
        for k in range(self.n_cells):
            soc[k] += a[k] * di
            v1[k] += g1[k] * di
            v2[k] += g2[k] * di
        self._q_heat = max(self._q_heat + (j * j - i * i) * frac * dt, 0.0)
        self.i_a = i + di
        self._log_cut((self.t_ms - self._dt_ms) * 1000 + cut_us, self.i_inst_a, "afe")
        self.i_inst_a = float(j)

    def _log_cut(self, t_us, amps, how):
        self.interruptions.append((self._onset_us, t_us, float(amps), how))
        self._onset_us = -1

    # --- fault events (scenario events; hil/scenarios.py) ------------------------------------
    def _fault(self, kind, args, entry):
        self.fault_log.append((self.t_ms * 1000, kind, tuple(args)))
        self._faults = [f for f in self._faults if f[3] > self.t_ms] + [entry]
        self._onset_us = self.t_ms * 1000  # the fault current flows from the start of this step

    def short_circuit(self, value, ms, unit="ohm"):
        """A hard short across the pack for ms: through `value` ohm (the current the cells push
        through it, limited by their R0: I = OCV / (R + R0_stack), hundreds to thousands of A), or a
        fixed `value` A with unit='a'. It stays while the path is open; it ends after ms."""
        if unit not in ("ohm", "a") or value <= 0 or ms <= 0:
            raise ValueError("short_circuit(value > 0, ms > 0, unit 'ohm' or 'a'), got %r %r %r" % (value, ms, unit))
        self._fault("short_circuit", (value, ms, unit), ["short", float(value), unit, self.t_ms + ms])

    def surge(self, amps, ms):
        """A load surge (an inverter's motor start): `amps` of extra discharge for ms."""
        if ms <= 0:
            raise ValueError("surge(amps, ms > 0), got %r %r" % (amps, ms))
        self._fault("surge", (amps, ms), ["surge", abs(float(amps)), "a", self.t_ms + ms])

    def ripple(self, amps_pk, hz=100.0, offset_ppm=0.0):
        """A sinusoidal ripple of amps_pk on the load current (a single-phase inverter's 100 Hz),
        at hz * (1 + offset_ppm / 1e6): the clocks of the inverter and the BMS never agree exactly.
        The step's mean is exact (it moves the charge), the reply's instantaneous current is the
        value at the step's end (the sample instant). amps_pk 0 removes it."""
        if amps_pk and hz <= 0:
            raise ValueError("ripple(amps_pk, hz > 0, offset_ppm), got %r %r" % (amps_pk, hz))
        self._ripple = (float(amps_pk), 2.0 * math.pi * hz * (1.0 + offset_ppm * 1e-6) / 1000.0) if amps_pk else None

    def _fault_amps(self, t0):
        out = 0.0
        for kind, v, unit, end in self._faults:
            if t0 >= end:
                continue
            if kind == "short" and unit == "ohm":
                out -= self._v0sum / (v + self.r0_stack)
            else:
                out -= abs(v)  # a short of fixed amps, or a surge: discharge either way
        if t0 >= max(f[3] for f in self._faults):
            self._faults = []
        return out

    def _advance(self, i, c):
        """One fused loop per cell: SoC, RC voltages, hysteresis, then the terminal voltage = OCV on
        the hysteresis mix + RC voltages + R0 drop (table lookup on the uniform grid)."""
        dt, a, sdis, e1, e2, g1, g2, _ = c
        soc, v1, v2, h, r0 = self._soc, self._v1, self._v2, self._h, self._r0
        mid, half, s0, pmax = self._mid, self._half, self._s0, self._jmax + 0.999999
        # one-state hysteresis: h moves towards sign(I), 1/e per hyst_soc of SoC throughput
        f = 1.0 - math.exp(-abs(i) * dt / self._hyst_as) if (i and self._hyst_as) else 0.0
        sg = 1.0 if i > 0 else -1.0
        v, mv10 = [], []
        for k in range(self.n_cells):
            s = soc[k] + a[k] * i - sdis[k]
            soc[k] = s
            x1 = v1[k] * e1[k] + g1[k] * i
            v1[k] = x1
            x2 = v2[k] * e2[k] + g2[k] * i
            v2[k] = x2
            hk = h[k]
            hk += (sg - hk) * f
            h[k] = hk
            p = (s - s0) * 1000.0
            p = 0.0 if p < 0.0 else (pmax if p > pmax else p)
            j = int(p)
            fr = p - j
            m, hf = mid[j], half[j]
            x = m + (mid[j + 1] - m) * fr + hk * (hf + (half[j + 1] - hf) * fr) + x1 + x2 + r0[k] * i
            v.append(x)
            mv10.append(int(x * 10000.0 + 0.5))
        self._v, self._mv10 = v, mv10
        self._v0sum = sum(v) - i * self.r0_stack
        self._out = None

    def _bleed(self, mask, c):
        """The bled cells' own discharge over the step (V / R alone, a run's loop current for adjacent
        cells; V: the terminal voltage this step): SoC, RC and R0 drop as if that cell alone carried it (the hysteresis state is not moved:
        60 mA on a 100 Ah cell). The terminal voltage misses this step's OCV change (seen next step)."""
        dt, a, _, _, _, g1, g2, _ = c
        soc, v1, v2, r0, v, mv10, bled = self._soc, self._v1, self._v2, self._r0, self._v, self._mv10, self.bled_as
        dsum = 0.0
        k = 0
        ib = 0.0
        run = 0  # cells of the current run of adjacent bled cells still to go
        while mask and k < self.n_cells:
            if mask & 1:
                if not run:  # a new run: its one loop current (module docstring)
                    j, vs = k, 0.0
                    while j < self.n_cells and mask >> (j - k) & 1:
                        vs += max(v[j], 0.0)
                        j += 1
                    run = j - k
                    ib = vs / (self.bal_r_ohm + (run - 1) * self.bal_rsw_ohm)
                run -= 1
                x = v[k]
                soc[k] -= a[k] * ib
                v1[k] -= g1[k] * ib
                v2[k] -= g2[k] * ib
                bled[k] += ib * dt
                self._bal_j += x * ib * dt
                d = (g1[k] + g2[k] + r0[k]) * ib
                v[k] = x - d
                mv10[k] = int(v[k] * 10000.0 + 0.5)
                dsum += d - r0[k] * ib
            mask >>= 1
            k += 1
        self._v0sum -= dsum  # OCV + RC: the bleed's RC part, not its R0 drop

    def _thermal(self):
        dt = self._heat_ms / 1000.0
        p = self._bal_j / dt if dt else 0.0  # mean balancing power since the last update, W
        self._bal_j = 0.0
        self.board_rise_c += (p * _BOARD_K_W - self.board_rise_c) * (1.0 - math.exp(-dt / _BOARD_TAU_S))
        t = self.temp_c
        heat = self._q_heat * (self.r0 + self.r12[0] + self.r12[1])
        flow = self._g_amb * (self.ambient_c - t) * dt
        d = (t[1:] - t[:-1]) * (_G_NB * dt)  # neighbour exchange
        flow[:-1] += d
        flow[1:] -= d
        t += (heat + flow) / (_C_TH_PER_AH * self.cap_ah)
        self._q_heat = 0.0
        self._heat_ms = 0
        self._update_resistance()

    # --- speculation (the virtual board steps ahead while the firmware works) -------------------
    def snapshot(self):
        """The state step() changes, to undo a step with restore(): the virtual-board runner steps the
        plant ahead while the firmware works (pipelining) and undoes the step when the firmware asks
        for another one. Profiles from hil.profiles keep only scalars as state (chargers: done / cv /
        out_a), so a shallow copy of each charger's attributes covers them."""
        prof = self.profile
        # loads keep no state that changes a result (Fridge._k is only where its search starts)
        parts = () if prof is None else [(q, q.__dict__.copy()) for q in prof.chargers]
        return (self.t_ms, self.i_a, self.relay_closed, self._q_heat, self._heat_ms, self._soc[:],
                self._v1[:], self._v2[:], self._h[:], self._v, self._mv10, self._v0sum, self._out,
                self.temp_c.copy(), self._temps, self.r0, self.r12, self.r0_stack, self._r0, parts,
                (self.i_inst_a, self.chg, self.dsg, self.bal_mask, self._dt_ms, self._faults,
                 self._onset_us, len(self.interruptions)),
                (self.bled_as[:], self._bal_j, self.board_rise_c))

    def restore(self, snap):
        (self.t_ms, self.i_a, self.relay_closed, self._q_heat, self._heat_ms, self._soc, self._v1,
         self._v2, self._h, self._v, self._mv10, self._v0sum, self._out, temp_c, self._temps, r0, r12,
         self.r0_stack, self._r0, parts, path, bal) = snap
        (self.i_inst_a, self.chg, self.dsg, self.bal_mask, self._dt_ms, self._faults, self._onset_us, n) = path
        self.bled_as, self._bal_j, self.board_rise_c = bal
        del self.interruptions[n:]
        for q, d in parts:
            q.__dict__.update(d)
        if r12 is not self.r12:  # a thermal update ran: put back R(T) and the cached RC gains
            self.r0, self.r12 = r0, r12
            self.temp_c = temp_c
            for c in self._coef.values():
                self._rc_gains(c)
        else:
            self.temp_c[:] = temp_c

    # --- what the runner reads -----------------------------------------------------------------
    @property
    def v0_stack(self):
        """Stack voltage without the R0 drop (for chargers regulating the pack voltage)."""
        return self._v0sum

    @property
    def stack_v(self):
        return sum(self._v)

    @property
    def cells_v(self):
        return np.array(self._v)

    @property
    def cells_mv10(self):
        if self._out is None:
            self._out = np.array(self._mv10, dtype=np.int32)
        return self._out

    @property
    def stack_mv10(self):
        return sum(self._mv10)

    @property
    def i_ma(self):
        """The current at the last step's end (the sample instant), mA."""
        return int(round(self.i_inst_a * 1000.0))

    @property
    def i_avg_ma(self):
        """The last step's mean current, mA (what moved charge: the chips' accumulators count it)."""
        return int(round(self.i_a * 1000.0))

    @property
    def path(self):
        """The power path as the last step had it: bit 0 relay, 1 CHG, 2 DSG (the step request's bits)."""
        return (1 if self.relay_closed else 0) | (2 if self.chg else 0) | (4 if self.dsg else 0)

    @property
    def soc(self):
        return np.array(self._soc)

    @property
    def h(self):
        """Hysteresis state per cell: -1 discharge branch .. +1 charge branch."""
        return np.array(self._h)

    @property
    def temps_c(self):
        t = self.temp_c
        b = self.ambient_c + self.board_rise_c  # the board (balancing heat) where no cell is near
        out = [b if k is None else float(t[k]) for k in sensor_cells(self.n_cells)]
        out[6] += 3.0  # die self-heating
        return out

    @property
    def temps_dc(self):
        if self._temps is None:  # temperatures change once per thermal update
            self._temps = np.rint(np.array(self.temps_c) * 10.0).astype(np.int16)
        return self._temps

    @property
    def pack_soc(self):
        """What a user can use: charge left until the first cell is empty over the usable window
        (that plus the charge until the first cell is full)."""
        q = self.soc * self.cap_ah
        left = max(float(q.min()), 0.0)
        room = max(float((self.cap_ah - q).min()), 0.0)
        return left / (left + room) if left + room > 0 else 0.0

    def truth_row(self):
        return truth_row(self.t_ms, self.i_a, self._v, float(self.temp_c.max()), self.pack_soc)

    def reply_fields(self):
        """(cells in 0.1 mV, temperatures in 0.1 °C, current in mA at the sample instant, stack in
        0.1 mV, the step's mean current in mA): what the virtual board's step reply carries, as Python
        ints, on every step of virtual time. The cells are the plant's own list (read it, never change
        it) and the temperatures' list is made once per thermal update, so a step costs no array
        conversion."""
        cells = self._mv10
        temps = self.temps_dc
        tl = self._temps_list
        if tl is None or tl[0] is not temps:
            tl = self._temps_list = (temps, temps.tolist())
        i = self.i_inst_a
        a = self.i_a
        return cells, tl[1], int(round(i * 1000.0)), sum(cells), int(round(a * 1000.0)) if a != i else int(round(i * 1000.0))

    # --- scenario actions ----------------------------------------------------------------------
    def degrade_cell(self, idx, cap_factor=1.0, r_factor=1.0):
        self.cap_ah[idx] *= cap_factor
        self.r0_25[idx] *= r_factor
        self.r12_25[:, idx] *= r_factor
        self._coef.clear()  # the SoC gain depends on the capacity
        self._update_resistance()

    def set_ambient(self, c):
        self.ambient_c = float(c)
        self._temps = None


class TracePlant:
    """Replays a truth log (CSV: t_s, current_a, cellNN_v..., temp_c[, soc]) through the Plant
    interface, interpolating in time. The trace cannot react: an open relay zeroes the current but
    leaves the recorded voltages."""

    def __init__(self, csv_path, capacity_ah=100.0):
        with open(csv_path, newline="") as f:
            rows = list(csv.DictReader(f))
        if not rows:
            raise ValueError("empty trace: %s" % csv_path)
        cols = sorted((c for c in rows[0] if c.startswith("cell") and c.endswith("_v")), key=lambda c: int(c[4:-2]))
        self.n_cells = len(cols)
        self._t = np.array([float(r["t_s"]) for r in rows]) * 1000.0
        self._cells = np.array([[float(r[c]) for c in cols] for r in rows])
        self._i = np.array([float(r["current_a"]) for r in rows])
        self._temp = np.array([float(r.get("temp_c") or 25.0) for r in rows])
        self._soc = np.array([float(r["soc"]) for r in rows]) if "soc" in rows[0] else None
        self.capacity_ah = capacity_ah
        self.t_ms = int(self._t[0])
        self.relay_closed = True
        self.chg = self.dsg = True
        self.bal_mask = 0  # as asked; a recording cannot bleed
        self.bled_as = [0.0] * self.n_cells
        self.interruptions = []
        self.ambient_c = float(self._temp[0])
        self._seek()

    def _seek(self):
        t = self._t
        k = int(np.searchsorted(t, self.t_ms, "right")) - 1
        k = min(max(k, 0), len(t) - 2) if len(t) > 1 else 0
        if len(t) > 1:
            f = min(max((self.t_ms - t[k]) / (t[k + 1] - t[k]), 0.0), 1.0)
        else:
            f = 0.0
        k1 = min(k + 1, len(t) - 1)
        mix = lambda a: a[k] + (a[k1] - a[k]) * f  # noqa: E731
        self._v = mix(self._cells)
        self.i_a = float(mix(self._i)) if self.relay_closed else 0.0
        self._tc = float(mix(self._temp))
        self._pack_soc = float(mix(self._soc)) if self._soc is not None else float("nan")

    def step(self, dt_ms, relay_closed=True, chg=True, dsg=True, cut_us=-1, bal_mask=0):
        """As Plant.step; the path: an open relay, CHG or DSG off zero the current they block."""
        self.relay_closed = relay_closed
        self.chg, self.dsg = chg, dsg
        self.bal_mask = bal_mask
        self.t_ms += dt_ms
        self._seek()
        self.i_a = float(path_passes(self.i_a, chg, dsg))

    @property
    def done(self):
        return self.t_ms >= self._t[-1]

    @property
    def cells_v(self):
        return self._v

    @property
    def stack_v(self):
        return float(self._v.sum())

    @property
    def cells_mv10(self):
        return np.rint(self._v * 10000.0).astype(np.int32)

    @property
    def stack_mv10(self):
        return int(self.cells_mv10.sum())

    i_ma = i_avg_ma = property(lambda self: int(round(self.i_a * 1000.0)))
    path = Plant.path

    @property
    def temps_dc(self):
        return np.full(7, int(round(self._tc * 10.0)), dtype=np.int16)

    @property
    def soc(self):
        return np.full(self.n_cells, self._pack_soc)

    @property
    def pack_soc(self):
        return self._pack_soc

    def truth_row(self):
        return truth_row(self.t_ms, self.i_a, self._v, self._tc, self._pack_soc)

    def reply_fields(self):
        """As Plant.reply_fields."""
        cells = [int(c) for c in self.cells_mv10]
        return cells, [int(t) for t in self.temps_dc], int(self.i_ma), int(self.stack_mv10), int(self.i_ma)

    def degrade_cell(self, idx, cap_factor=1.0, r_factor=1.0):
        pass  # a recording cannot be changed

    def set_ambient(self, c):
        self.ambient_c = float(c)


def write_trace(path, rows):
    """Write truth rows (Plant.truth_row dicts) as the log CSV schema TracePlant reads."""
    rows = list(rows)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
