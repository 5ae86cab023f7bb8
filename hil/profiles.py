"""Loads and chargers: what the pack is asked to deliver, in A (+ = charging), at time t.

A profile is `current(t_ms, plant) -> A`. `Mix` combines parts: loads first (constant-power
inverter loads, ≤ 0 A), then chargers, which regulate the pack voltage: a charger delivers at most
its own current limit and at most what keeps the stack at its CV set point given the loads
(I_pack ≤ (V_cv - V0_stack) / R0_stack, from the plant's state). Random parts (fridge cycling,
laptop power, clouds) are drawn once from a seed at construction, so a profile is deterministic.
Times in seconds unless named _ms.
"""
import math
from bisect import bisect_right

import numpy as np

INF = float("inf")


class Part:
    """Something on the DC bus, active in [t0_s, t1_s)."""
    charger = False

    def __init__(self, t0_s=0.0, t1_s=INF):
        self.t0_s, self.t1_s = t0_s, t1_s

    def active(self, t_s):
        return self.t0_s <= t_s < self.t1_s


class InverterLoad(Part):
    """Constant AC power through an inverter: I = -P / (eff * V_stack); `idle_w` while not active;
    the inverter shuts down below `v_min_cell` per cell on average (its low-voltage cut-off)."""

    def __init__(self, power_w, t0_s=0.0, t1_s=INF, eff=0.9, idle_w=0.0, v_min_cell=2.7):
        super().__init__(t0_s, t1_s)
        self.power_w, self.eff, self.idle_w, self.v_min_cell = power_w, eff, idle_w, v_min_cell

    def power(self, t_s):
        return self.power_w

    def current(self, t_s, plant):
        p = self.power(t_s) if self.active(t_s) else self.idle_w
        v = plant.v0_stack
        return -p / (self.eff * v) if p and v > self.v_min_cell * plant.n_cells else 0.0


def kettle(t_s, minutes=3.0, power_w=2000.0):
    return InverterLoad(power_w, t_s, t_s + 60.0 * minutes)


class Fridge(InverterLoad):
    """Compressor cycling: runs `on_s` then rests `off_s` (each +-25 % jitter), with a start surge."""

    def __init__(self, seed=0, t0_s=0.0, t1_s=INF, power_w=110.0, on_s=900.0, off_s=1800.0,
                 surge_w=700.0, surge_s=2.0, horizon_s=3 * 86400.0):
        super().__init__(power_w, t0_s, t1_s)
        rng = np.random.default_rng(seed + 101)
        starts, t = [], t0_s + float(rng.uniform(0, off_s))
        end = min(t1_s, t0_s + horizon_s)
        while t < end:
            on = on_s * float(rng.uniform(0.75, 1.25))
            starts.append((t, t + on))
            t += on + off_s * float(rng.uniform(0.75, 1.25))
        self.cycles = starts
        self.surge_w, self.surge_s = surge_w, surge_s
        self._k = 0

    def power(self, t_s):
        c = self.cycles
        k = self._k
        while k < len(c) - 1 and t_s >= c[k][1]:  # runs forward in time; rewinds rarely
            k += 1
        while k > 0 and t_s < c[k][0]:
            k -= 1
        self._k = k
        if not c or not c[k][0] <= t_s < c[k][1]:
            return 0.0
        return self.surge_w if t_s - c[k][0] < self.surge_s else self.power_w


class Laptop(InverterLoad):
    """A laptop charger: 20..65 W, a new level each minute."""

    def __init__(self, seed=0, t0_s=0.0, t1_s=INF, lo_w=20.0, hi_w=65.0):
        super().__init__(hi_w, t0_s, t1_s)
        n = int(min(t1_s - t0_s, 3 * 86400.0) // 60) + 1
        self.levels = np.random.default_rng(seed + 202).uniform(lo_w, hi_w, n).tolist()

    def power(self, t_s):
        return self.levels[min(int((t_s - self.t0_s) // 60), len(self.levels) - 1)]


class Constant(Part):
    """A fixed current (A, + = charge), e.g. a DC load or a test current."""

    def __init__(self, amps, t0_s=0.0, t1_s=INF):
        super().__init__(t0_s, t1_s)
        self.amps = amps

    def current(self, t_s, plant):
        return self.amps if self.active(t_s) else 0.0


class Charger(Part):
    """CC-CV: up to `i_cc` A until the stack reaches `v_cv`, then hold `v_cv` (the current tapers);
    stops when its own output falls below `i_tail` (if `i_tail` > 0) or when the BMS opens the relay
    (it sees the battery disappear); a stopped charger stays off."""
    charger = True

    def __init__(self, i_cc, v_cv, i_tail=0.0, t0_s=0.0, t1_s=INF, stop_on_disconnect=True):
        super().__init__(t0_s, t1_s)
        self.i_cc, self.v_cv, self.i_tail = i_cc, v_cv, i_tail
        self.stop_on_disconnect = stop_on_disconnect
        self.done = False
        self.cv = False
        self.out_a = 0.0

    def limit(self, t_s, plant):
        return self.i_cc

    def charge(self, t_s, plant, net_a):
        """Output current given the pack current drawn by everything else (`net_a`, ≤ 0 for loads)."""
        if self.done or not self.active(t_s):
            self.out_a = 0.0
            return 0.0
        if not plant.relay_closed:
            self.done = self.stop_on_disconnect
            self.out_a = 0.0
            return 0.0
        lim = self.limit(t_s, plant)
        room = (self.v_cv - plant.v0_stack) / plant.r0_stack - net_a
        self.cv = room < lim
        out = min(max(room, 0.0), lim)
        if self.cv and self.i_tail > 0 and out < self.i_tail:
            self.done = True
            out = 0.0
        self.out_a = out
        return out


def mains(i_cc, v_cv, i_tail, t0_s=0.0, t1_s=INF):
    return Charger(i_cc, v_cv, i_tail, t0_s, t1_s)


def pushing_charger(i_cc, v_cv, t0_s=0.0, t1_s=INF):
    """A charger that keeps pushing at end of charge: no tail cut-off, and it resumes whenever the
    path closes again (a cheap or faulty charger, or one set for another chemistry); only the BMS
    (the firmware's cell_ov, the AFE's COV) stops it."""
    return Charger(i_cc, v_cv, 0.0, t0_s, t1_s, stop_on_disconnect=False)


class Solar(Charger):
    """PV through an MPPT controller: power = peak * sin-shaped day * cloud shading, absorb voltage
    held as CV, no end of charge (it floats), resumes after a disconnect (next sun)."""

    def __init__(self, peak_w, v_cv, sunrise_s, sunset_s, seed=0, clouds=True, eff=0.95):
        super().__init__(0.0, v_cv, 0.0, sunrise_s, sunset_s, stop_on_disconnect=False)
        self.peak_w, self.eff = peak_w, eff
        rng = np.random.default_rng(seed + 303)
        self.clouds = []
        t = sunrise_s
        while clouds and t < sunset_s:
            t += float(rng.exponential(1800.0))
            dur = float(rng.uniform(120.0, 1500.0))
            self.clouds.append((t, t + dur, float(rng.uniform(0.2, 0.8))))
            t += dur
        self._starts = [c[0] for c in self.clouds]
        self._w = math.pi / (sunset_s - sunrise_s)

    def irradiance(self, t_s):
        if not self.active(t_s):
            return 0.0
        x = math.sin(self._w * (t_s - self.t0_s))
        k = bisect_right(self._starts, t_s) - 1  # clouds do not overlap
        if k >= 0 and t_s < self.clouds[k][1]:
            return x * (1.0 - self.clouds[k][2])
        return x

    def limit(self, t_s, plant):
        return self.peak_w * self.eff * self.irradiance(t_s) / max(plant.v0_stack, 1.0)


class Mix:
    """All parts on the bus: loads summed, then each charger fills up to its limit / CV set point."""

    def __init__(self, *parts):
        self.loads = [p for p in parts if not p.charger]
        self.chargers = [p for p in parts if p.charger]

    def current(self, t_ms, plant):
        t_s = t_ms / 1000.0
        net = 0.0
        for p in self.loads:
            net += p.current(t_s, plant)
        for c in self.chargers:
            net += c.charge(t_s, plant, net)
        return net


def cell_cv(chemistry, n_cells, per_cell_v=None):
    """Stack CV set point for a chemistry (LFP 3.45 V/cell, NMC 4.1 V/cell unless given): the gentle
    set points that keep a spread pack below the cell over-voltage limit."""
    return n_cells * (per_cell_v or {"lfp": 3.45, "nmc": 4.1}[chemistry])
