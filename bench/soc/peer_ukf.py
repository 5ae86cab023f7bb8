"""Peer estimator for the accuracy benchmark: filterpy's UnscentedKalmanFilter on the same fitted ECM
(`packwatch fit` output) that pwfw.soc uses, run on the pack-mean cell (mean of the cell voltages).

States: SoC, two RC voltages, hysteresis h ∈ [−1, 1]. Measurement: mean cell voltage =
OCV_mid(s) + h·(OCV_chg − OCV_dis)/2 + I·R0(s) + v1 + v2. Tuning is from the sensor/model error budget,
not fitted to the validation runs (values in `UkfSoc.__init__` and `step`). The benchmark steps it every
10 s with the current and mean voltage averaged over those 10 s (pwfw.soc also corrects from 10 s
window averages), which keeps its CPython cost reasonable.
"""
import math

import numpy as np
from filterpy.kalman import MerweScaledSigmaPoints, UnscentedKalmanFilter


class UkfSoc:
    def __init__(self, model, cap_ah, n_cells, soc0, sigma0, dt):
        self.x_tab = np.asarray(model["soc_pct"], float) / 100.0
        chg = np.asarray(model["ocv_charge_v"], float)
        dis = np.asarray(model["ocv_discharge_v"], float)
        self.mid, self.half = (chg + dis) / 2, (chg - dis) / 2
        sc = float(model["capacity_ah"]) / cap_ah
        self.r0 = np.asarray(model["r0_ohm"], float) * sc
        rc = model["rc"]
        self.r1, self.r2 = (np.asarray(r["r_ohm"], float) * sc for r in rc[:2])
        self.t1, self.t2 = (float(r["tau_s"]) for r in rc[:2])
        self.gamma = float(model.get("hysteresis", {}).get("gamma", 40.0))
        self.q = cap_ah * 3600.0
        self.ocv_err = float(model.get("ocv_err_mv", 3.0)) / 1000
        self.noise = 0.005 / np.sqrt(n_cells)   # 5 mV per cell, averaged over the cells
        pts = MerweScaledSigmaPoints(4, alpha=0.3, beta=2.0, kappa=0.0)
        f = UnscentedKalmanFilter(dim_x=4, dim_z=1, dt=dt, hx=self._hx, fx=self._fx, points=pts)
        f.x = np.array([soc0, 0.0, 0.0, 0.0])
        f.P = np.diag([sigma0 ** 2, 0.01 ** 2, 0.01 ** 2, 0.5 ** 2])
        self.f = f
        self.dt = dt

    def _fx(self, x, dt, i=0.0):
        s, v1, v2, h = x
        ds = i * dt / self.q
        a1, a2 = math.exp(-dt / self.t1), math.exp(-dt / self.t2)
        v1 = a1 * v1 + (1 - a1) * i * np.interp(s, self.x_tab, self.r1)
        v2 = a2 * v2 + (1 - a2) * i * np.interp(s, self.x_tab, self.r2)
        if i != 0:
            h = h + ((1.0 if i > 0 else -1.0) - h) * min(1.0, self.gamma * abs(ds))
        return np.array([s + ds, v1, v2, min(1.0, max(-1.0, h))])

    def _hx(self, x, i=0.0):
        s, v1, v2, h = x
        # beyond the table: extend with the end slopes so the filter sees the direction
        sc = min(1.0, max(0.0, s))
        v = np.interp(sc, self.x_tab, self.mid) + min(1.0, max(-1.0, h)) * np.interp(sc, self.x_tab, self.half)
        if s < 0:
            v += s * (self.mid[1] - self.mid[0]) / self.x_tab[1]
        elif s > 1:
            v += (s - 1) * (self.mid[-1] - self.mid[-2]) / (1 - self.x_tab[-2])
        return np.array([v + i * np.interp(sc, self.x_tab, self.r0) + v1 + v2])

    def step(self, dt, i, v_mean):
        """One sample: current over the last dt (A, + charging), mean cell voltage (V)."""
        f = self.f
        ds = abs(i) * dt / self.q
        # process noise: current gain/capacity error 1 % of the charge moved, offset/drift 3e-5/√s,
        # RC states 0.3 mV, hysteresis 0.02 per step
        f.Q = np.diag([(0.01 * ds) ** 2 + (3e-5) ** 2 * dt, 0.0003 ** 2, 0.0003 ** 2, 0.02 ** 2])
        f.predict(dt=dt, i=i)
        # measurement noise: cell noise (averaged), OCV table error, 30 % of the IR drop (model error)
        r0 = np.interp(min(1.0, max(0.0, f.x[0])), self.x_tab, self.r0)
        f.R = np.array([[self.noise ** 2 + self.ocv_err ** 2 + (0.3 * abs(i) * r0) ** 2]])
        f.update(np.array([v_mean]), i=i)
        f.x[3] = np.clip(f.x[3], -1, 1)
        return f.x[0], np.sqrt(max(f.P[0, 0], 0.0))
