"""A small float equivalent-circuit cell simulator (OCV with one-state hysteresis, R0, two RC pairs).

Used by the tests (synthetic logs with known truth), by `packwatch fit` tests and as the model of the
peer EKF in the benchmark. Not ground truth for the accuracy benchmark: PyBaMM is.
"""
import numpy as np


class Ecm:
    def __init__(self, model, cap_ah=None, r_scale=1.0):
        self.m = model
        self.x = np.asarray(model["soc_pct"], float) / 100.0
        self.chg = np.asarray(model["ocv_charge_v"], float)
        self.dis = np.asarray(model["ocv_discharge_v"], float)
        self.cap_ah = float(cap_ah or model["capacity_ah"])
        sc = float(model["capacity_ah"]) / self.cap_ah * r_scale
        self.r0 = np.asarray(model["r0_ohm"], float) * sc
        rc = model.get("rc", [])
        self.rs = [np.asarray(r["r_ohm"], float) * sc for r in rc]
        self.taus = [float(r["tau_s"]) for r in rc]
        self.gamma = float(model.get("hysteresis", {}).get("gamma", 50.0))

    def ocv(self, soc, h):
        c = np.interp(soc, self.x, self.chg)
        d = np.interp(soc, self.x, self.dis)
        return (c + d) / 2 + h * (c - d) / 2

    def run(self, t_s, i_a, soc0=0.5, h0=0.0):
        """Truth for current profile i_a (A, + charging) sampled at t_s: returns (v, soc)."""
        n = len(t_s)
        v = np.empty(n)
        soc = np.empty(n)
        s, h = soc0, h0
        vrc = [0.0] * len(self.rs)
        q = self.cap_ah * 3600.0
        for k in range(n):
            dt = t_s[k] - t_s[k - 1] if k else 0.0
            i = i_a[k]
            ds = i * dt / q
            s += ds
            if i != 0:
                h += (np.sign(i) - h) * min(1.0, self.gamma * abs(ds))
            for j, (r, tau) in enumerate(zip(self.rs, self.taus)):
                target = i * np.interp(s, self.x, r)
                vrc[j] += (target - vrc[j]) * (1 - np.exp(-dt / tau))
            soc[k] = s
            v[k] = self.ocv(s, h) + i * np.interp(s, self.x, self.r0) + sum(vrc)
        return v, soc


def profile(segments, dt=1.0):
    """Piecewise-constant current profile from [(seconds, amps[, dt]), ...] -> (t_s, i_a)."""
    t, i = [], []
    t0 = 0.0
    for seg in segments:
        dur, amps = seg[0], seg[1]
        k = np.arange(0, dur, seg[2] if len(seg) > 2 else dt)
        t.append(t0 + k)
        i.append(np.full(len(k), float(amps)))
        t0 += dur
    return np.concatenate(t), np.concatenate(i)
