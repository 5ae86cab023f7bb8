"""Synthetic load profiles for the SoC accuracy benchmark (drive-cycle files are not downloadable).

Every profile is a list of segments for the pack's driver cell: ("dc", i_a) — a current array sampled at
DT seconds, + = charging — or ("step", "PyBaMM experiment step string") for what needs voltage control
(CV hold, discharge until the cut-off). Currents are in C-rates of the fresh cell's nominal capacity.
All randomness comes from the numpy Generator passed in (seeded by the caller).
"""
import numpy as np

DT = 2.0  # s, log period of the validation runs

# C-rates of the household loads behind the inverter (a ~1 kWh power station scaled to one cell)
IDLE = 0.012      # inverter standby + BMS + router
FRIDGE = 0.06     # compressor running
LAPTOP = 0.03
KETTLE = 1.0
MICROWAVE = 0.6
TV = 0.04


def _n(seconds):
    return int(round(seconds / DT))


def fridge(n, rng, on=(600, 900), off=(1200, 1800), phase=None):
    """Compressor cycling: on 10–15 min, off 20–30 min, start-up surge (3× for one sample)."""
    out = np.zeros(n)
    k = _n(rng.uniform(0, 1800)) if phase is None else phase
    while k < n:
        m = _n(rng.uniform(*on))
        out[k:k + m] = FRIDGE
        out[k] = 3 * FRIDGE
        k += m + _n(rng.uniform(*off))
    return out


def bursts(n, rng, count, rate, dur=(150, 240), window=(0.0, 1.0)):
    out = np.zeros(n)
    for _ in range(count):
        m = _n(rng.uniform(*dur))
        k = int(rng.uniform(window[0] * n, window[1] * n - m))
        out[k:k + m] += rate
    return out


def clouds(n, rng):
    """Cloud factor: Markov spells of clear (0.9–1.0) and cloud (0.15–0.45), 2–20 min each, with 1 min
    edges (no per-sample flicker: a current that changes every sample makes PyBaMM crawl)."""
    out = np.empty(n)
    k, clear = 0, True
    while k < n:
        m = _n(rng.uniform(120, 1200))
        out[k:k + m] = rng.uniform(0.9, 1.0) if clear else rng.uniform(0.15, 0.45)
        clear = not clear if rng.random() < 0.7 else clear
        k += m
    m = _n(60)
    return np.convolve(np.concatenate([np.full(m, out[0]), out]), np.ones(m) / m, "valid")[1:]


def inverter(rng):
    """6 h of inverter loads from 70 %: standby, fridge cycling, laptop, kettle and microwave bursts,
    a 45 min pause with the inverter off (true rest)."""
    n = _n(6 * 3600)
    load = IDLE + fridge(n, rng)
    load[_n(3600):_n(3 * 3600)] += LAPTOP
    load += bursts(n, rng, 4, KETTLE) + bursts(n, rng, 2, MICROWAVE, (90, 150))
    load[_n(4 * 3600):_n(4.75 * 3600)] = 0.0
    return [("dc", -load)], 0.70


def solar_day(rng):
    """A power-station day, 06:00–22:00 from 30 %: fridge all day, morning kettle, laptop work, cloudy
    solar 07:00–19:00 (scaled so the day peaks near 85 %, no full charge), evening TV/kettle/microwave."""
    n = _n(16 * 3600)
    h = np.arange(n) * DT / 3600 + 6.0
    load = IDLE + fridge(n, rng)
    load += bursts(n, rng, 2, KETTLE, window=(0.0, 2 / 16))
    load[(h >= 8.5) & (h < 17)] += LAPTOP
    load[(h >= 18.5) & (h < 22)] += TV
    load += bursts(n, rng, 1, KETTLE, window=(12.5 / 16, 14 / 16))
    load += bursts(n, rng, 1, MICROWAVE, (90, 150), window=(12 / 16, 13 / 16))
    # panel output in 1 min steps (an MPPT charger updates slowly)
    hq = np.floor(h * 60) / 60
    sun = np.clip(np.sin(np.pi * (hq - 7) / 12), 0, None) ** 1.5 * clouds(n, rng)
    # scale the panel so the SoC (fresh nominal capacity) peaks at 85 %
    lo, hi = 0.05, 2.0
    for _ in range(40):
        pk = (lo + hi) / 2
        soc = 0.30 + np.cumsum(pk * sun - load) * DT / 3600
        lo, hi = (pk, hi) if soc.max() < 0.85 else (lo, pk)
    return [("dc", pk * sun - load)], 0.30


def cccv_deep(chem, rng):
    """From 50 %: rest, 0.2C discharge 1 h, rest, CC-CV charge (0.3C to the CV voltage, hold to C/30),
    rest 1 h, deep discharge (0.3C with kettle bursts) to the cut-off, rest 1 h, 0.2C charge 2 h, rest."""
    from hil.pybamm_cells import LIMITS
    vmax, vmin = LIMITS[chem]
    stop = {"lfp": 2.55, "nmc": 2.9}[chem]  # driver cell; weaker cells go further (see accuracy.py)
    n = _n(2 * 3600)
    deep = -(0.3 + bursts(n, rng, 3, 0.5, (120, 180)))
    return [("dc", np.zeros(_n(1200))), ("dc", np.full(_n(3600), -0.2)), ("dc", np.zeros(_n(1800))),
            ("step", "Charge at {0.3C} until %g V" % vmax), ("step", "Hold at %g V until {C/30}" % vmax),
            ("dc", np.zeros(_n(3600))), ("dc", deep),
            ("step", "Discharge at {0.3C} until %g V" % stop),
            ("dc", np.zeros(_n(3600))), ("dc", np.full(_n(7200), 0.2)), ("dc", np.zeros(_n(1800)))], 0.50


def shallow(rng):
    """8 h of shallow cycling between ≈ 40 and 65 % (never a knee): discharges 0.1–0.4C and charges
    0.1–0.3C of 10–30 min, rests of 5–30 min in between."""
    n = _n(8 * 3600)
    i = np.zeros(n)
    soc, k, want = 0.55, 0, -1
    while k < n:
        if soc > 0.63:
            want = -1
        elif soc < 0.42:
            want = 1
        rate = rng.uniform(0.1, 0.4) if want < 0 else rng.uniform(0.1, 0.3)
        m = min(n - k, _n(rng.uniform(600, 1800)))
        i[k:k + m] = want * rate
        soc += want * rate * m * DT / 3600
        k += m + _n(rng.uniform(300, 1800))
        if rng.random() < 0.3:
            want = -want
    return [("dc", i)], 0.55


SCENARIOS = ("inverter", "solar_day", "cccv_deep", "shallow")


def scenario(name, chem, seed):
    rng = np.random.default_rng([seed, SCENARIOS.index(name), 1 if chem == "nmc" else 0])
    if name == "cccv_deep":
        return cccv_deep(chem, rng)
    return {"inverter": inverter, "solar_day": solar_day, "shallow": shallow}[name](rng)


def char_steps(chem, c, limits=None):
    """Characterisation for `packwatch fit` (c: nominal capacity, A): CC-CV charge, C/20 discharge and
    charge (CV hold to C/50), 10 % steps at C/2 both directions with 1 h rests and an HPPC pulse pair
    (1C discharge 10 s, 0.75C charge 10 s, 10 min rests) after each rest. limits: (CV voltage, cut-off)
    of another cell (default: the chemistry's bench cell)."""
    from hil.pybamm_cells import LIMITS
    vmax, vmin = limits or LIMITS[chem]
    s = ["Charge at %g A until %g V (10 second period)" % (c / 5, vmax),
         "Hold at %g V until %g A (10 second period)" % (vmax, c / 50),
         "Rest for 1 hour (60 second period)",
         "Discharge at %g A until %g V (60 second period)" % (c / 20, vmin),
         "Rest for 1 hour (60 second period)",
         "Charge at %g A until %g V (60 second period)" % (c / 20, vmax),
         "Hold at %g V until %g A (10 second period)" % (vmax, c / 50),
         "Rest for 1 hour (60 second period)"]
    for word, lim in (("Discharge", vmin), ("Charge", vmax)):
        for _ in range(9):
            s += ["%s at %g A for 12 minutes or until %g V (10 second period)" % (word, c / 2, lim),
                  "Rest for 1 hour (30 second period)",
                  "Discharge at %g A for 10 seconds (1 second period)" % c,
                  "Rest for 10 minutes (1 second period)",
                  "Charge at %g A for 10 seconds (1 second period)" % (0.75 * c),
                  "Rest for 10 minutes (1 second period)"]
        if word == "Discharge":
            s += ["Discharge at %g A until %g V (60 second period)" % (c / 20, vmin),
                  "Rest for 1 hour (60 second period)"]
    return s
