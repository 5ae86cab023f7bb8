"""Seeded scenario generator for the SoC tuning set and the locked test set (issue 15 item 3).

A scenario is drawn from a *family* (a load pattern) by a seed: the current profile (C-rates of the
nominal cell, DT = 2 s, + = charging; "step" segments for what needs voltage control: CC-CV, discharge
to the cut-off) and the conditions it runs under: ambient 5–40 °C, ageing (capacity 0…−10 %,
resistance 0…+40 %), cell-to-cell spread, sensor errors (cell offset/noise, current gain/offset/noise —
the noise is there at rest too) and the log period (2, 5 or 10 s). The profile does not depend on the
cell set: every cell set runs the same scenarios (placeholders {vmax}/{vstop} are the cell's voltages).

Families are split: TUNING_FAMILIES are the issue-4 scenarios' families (inverter, solar, CC-CV,
shallow — what the estimator was tuned on); TEST_FAMILIES are others. Which (family, seed) is in which
set is fixed in bench/soc/sets.json (with a digest of every test scenario, so a changed generator
shows), and bench/soc/test_plumbing.py checks that the two never overlap.
"""
import hashlib
import json
from pathlib import Path

import numpy as np

from bench.soc.profiles import DT, FRIDGE, IDLE, KETTLE, LAPTOP, MICROWAVE, TV, bursts, clouds, fridge

TUNING_FAMILIES = ("inverter", "solar", "cccv", "shallow")
TEST_FAMILIES = ("partial", "rests", "pulse", "ups", "deep")
FAMILIES = TUNING_FAMILIES + TEST_FAMILIES
SETS = Path(__file__).with_name("sets.json")

# soc bounds a current-only (no voltage control) profile keeps with the nominal capacity: an aged cell
# (−10 % and −2 % spread) swings 1/0.88 as far, which must stay inside the cell's window
LO, HI = 0.12, 0.88


def _n(seconds):
    return max(1, int(round(seconds / DT)))


def _soc(soc0, i):
    return soc0 + np.cumsum(i) * DT / 3600


def _fit_band(i, soc0, lo=LO, hi=HI):
    """Scale a current profile down until its SoC trajectory stays within [lo, hi]."""
    for _ in range(30):
        s = _soc(soc0, i)
        if s.min() >= lo and s.max() <= hi:
            return i
        i = i * 0.9
    raise ValueError("profile does not fit the SoC band")


# ---- tuning families (the issue-4 scenarios' patterns, randomised) --------------------------------
def inverter(rng):
    n = _n(rng.uniform(4, 6) * 3600)
    load = IDLE + fridge(n, rng)
    a = int(rng.uniform(0.1, 0.5) * n)
    load[a:a + _n(rng.uniform(1, 2) * 3600)] += LAPTOP
    load += bursts(n, rng, int(rng.integers(2, 6)), KETTLE) + bursts(n, rng, int(rng.integers(0, 3)),
                                                                     MICROWAVE, (90, 150))
    p = int(rng.uniform(0.5, 0.8) * n)
    load[p:p + _n(rng.uniform(10, 60) * 60)] = 0.0
    soc0 = rng.uniform(0.55, 0.7)
    return [("dc", -_fit_band(load, soc0))], soc0


def solar(rng):
    n = _n(rng.uniform(5, 6) * 3600)
    h0 = rng.uniform(8, 11)                    # start of the window, hour of day
    h = h0 + np.arange(n) * DT / 3600
    load = IDLE + fridge(n, rng) + bursts(n, rng, int(rng.integers(1, 4)), KETTLE)
    load[(h >= 9) & (h < 17)] += LAPTOP
    load[h >= 18.5] += TV
    hq = np.floor(h * 60) / 60
    sun = np.clip(np.sin(np.pi * (hq - 7) / 12), 0, None) ** 1.5 * clouds(n, rng)
    soc0 = rng.uniform(0.3, 0.45)
    peak = rng.uniform(0.7, 0.85)
    lo, hi = 0.05, 2.0
    for _ in range(40):
        pk = (lo + hi) / 2
        lo, hi = (pk, hi) if _soc(soc0, pk * sun - load).max() < peak else (lo, pk)
    return [("dc", _fit_band(pk * sun - load, soc0))], soc0


def cccv(rng):
    deep = -(rng.uniform(0.2, 0.4) + bursts(_n(5400), rng, int(rng.integers(1, 4)), 0.5, (120, 180)))
    return [("dc", np.zeros(_n(rng.uniform(10, 30) * 60))),
            ("dc", np.full(_n(rng.uniform(0.5, 1.0) * 3600), -rng.uniform(0.1, 0.3))),
            ("dc", np.zeros(_n(rng.uniform(10, 30) * 60))),
            ("step", "Charge at {%.3gC} until {vmax}" % rng.uniform(0.2, 0.5)),
            ("step", "Hold at {vmax} until {C/30}"),
            ("dc", np.zeros(_n(rng.uniform(0.5, 1.0) * 3600))), ("dc", deep),
            ("dc", np.zeros(_n(rng.uniform(10, 30) * 60)))], rng.uniform(0.4, 0.6)


def shallow(rng):
    n = _n(rng.uniform(4, 6) * 3600)
    mid, half = rng.uniform(0.4, 0.6), rng.uniform(0.08, 0.15)
    i = np.zeros(n)
    soc, k, want = mid, 0, -1
    while k < n:
        if soc > mid + half:
            want = -1
        elif soc < mid - half:
            want = 1
        rate = rng.uniform(0.1, 0.4) if want < 0 else rng.uniform(0.1, 0.3)
        m = min(n - k, _n(rng.uniform(600, 1800)))
        i[k:k + m] = want * rate
        soc += want * rate * m * DT / 3600
        k += m + _n(rng.uniform(300, 1800))
        if rng.random() < 0.3:
            want = -want
    return [("dc", _fit_band(i, mid))], mid


# ---- test families (never used to tune) -----------------------------------------------------------
def partial(rng):
    """Partial charges without CV (0.2–0.5C to 60–85 %) and discharges (0.1–0.6C to 20–40 %), short rests."""
    n = _n(rng.uniform(5, 6) * 3600)
    soc0 = rng.uniform(0.3, 0.6)
    i, k, soc = np.zeros(n), 0, soc0
    up = soc0 < 0.45
    while k < n:
        rate = rng.uniform(0.2, 0.5) if up else -rng.uniform(0.1, 0.6)
        goal = rng.uniform(0.6, 0.85) if up else rng.uniform(0.2, 0.4)
        m = min(n - k, max(1, _n(abs(goal - soc) / abs(rate) * 3600)))
        i[k:k + m] = rate
        soc += rate * m * DT / 3600
        k += m + _n(rng.uniform(0, 20) * 60)
        up = not up
    return [("dc", _fit_band(i, soc0))], soc0


def rests(rng):
    """Blocks of 0.05–1C (1–30 min, either direction) between rests of every length, 30 s … 2 h
    (log-uniform)."""
    n = _n(5 * 3600)
    soc0 = rng.uniform(0.4, 0.7)
    i, k, soc = np.zeros(n), 0, soc0
    while k < n:
        rate = rng.uniform(0.05, 1.0) * (1 if (soc < 0.35 or (soc < 0.75 and rng.random() < 0.4)) else -1)
        m = min(n - k, _n(rng.uniform(1, 30) * 60))
        i[k:k + m] = rate
        soc += rate * m * DT / 3600
        k += m + _n(np.exp(rng.uniform(np.log(30), np.log(7200))))
    return [("dc", _fit_band(i, soc0))], soc0


def pulse(rng):
    """E-bike / power tool: rides of a 0.1–0.3C base with 0.5–2C pulses of 5–60 s and 0.2–0.5C regen
    pulses, rests between rides."""
    n = _n(rng.uniform(3, 4) * 3600)
    soc0 = rng.uniform(0.55, 0.7)
    i, k = np.zeros(n), 0
    while k < n:
        ride = min(n - k, _n(rng.uniform(20, 50) * 60))
        seg = np.full(ride, -rng.uniform(0.1, 0.3))
        j = 0
        while j < ride:
            m = _n(rng.uniform(5, 60))
            seg[j:j + m] = -rng.uniform(0.5, 2.0) if rng.random() < 0.8 else rng.uniform(0.2, 0.5)
            j += m + _n(rng.uniform(20, 120))
        i[k:k + ride] = seg
        k += ride + _n(rng.uniform(5, 40) * 60)
    return [("dc", _fit_band(i, soc0, lo=0.15))], soc0


def ups(rng):
    """Backup supply: topped up by CC-CV, floats at full, an outage discharge (0.3–0.8C with jitter) to
    20–40 %, a rest, CC-CV recharge."""
    soc0 = rng.uniform(0.75, 0.9)
    out_rate = rng.uniform(0.3, 0.8)
    depth = 1.0 - rng.uniform(0.2, 0.4)
    m = _n(depth / out_rate * 3600)
    jit = out_rate * (1 + 0.2 * np.repeat(rng.uniform(-1, 1, m // _n(60) + 1), _n(60))[:m])
    return [("step", "Charge at {%.3gC} until {vmax}" % rng.uniform(0.1, 0.3)),
            ("step", "Hold at {vmax} until {C/50}"),
            ("dc", np.zeros(_n(rng.uniform(20, 90) * 60))),
            ("dc", -jit * depth / (jit.sum() * DT / 3600)),
            ("dc", np.zeros(_n(rng.uniform(10, 40) * 60))),
            ("step", "Charge at {%.3gC} until {vmax}" % rng.uniform(0.2, 0.4)),
            ("step", "Hold at {vmax} until {C/20}"),
            ("dc", np.zeros(_n(20 * 60)))], soc0


def deep(rng):
    """Through the low knee: a noisy 0.2–0.5C discharge, then to the cut-off, a rest, a partial charge."""
    soc0 = rng.uniform(0.3, 0.5)
    m = _n(rng.uniform(20, 40) * 60)
    base = rng.uniform(0.2, 0.5)
    noisy = -(base + 0.3 * base * np.repeat(rng.uniform(-1, 1, m // _n(120) + 1), _n(120))[:m])
    return [("dc", np.zeros(_n(rng.uniform(5, 20) * 60))), ("dc", noisy),
            ("step", "Discharge at {%.3gC} until {vstop}" % rng.uniform(0.15, 0.3)),
            ("dc", np.zeros(_n(rng.uniform(0.5, 1.5) * 3600))),
            ("dc", np.full(_n(rng.uniform(1, 2) * 3600), rng.uniform(0.2, 0.4))),
            ("dc", np.zeros(_n(20 * 60)))], soc0


GENERATORS = {"inverter": inverter, "solar": solar, "cccv": cccv, "shallow": shallow, "partial": partial,
              "rests": rests, "pulse": pulse, "ups": ups, "deep": deep}


def conditions(rng):
    """What the scenario runs under (uniform draws; sensor ranges include current noise at rest)."""
    return {
        "temp_c": float(rng.uniform(5, 40)),
        "age_cap": float(rng.uniform(0.90, 1.00)), "age_r": float(rng.uniform(1.0, 1.4)),
        "spread_cap": float(rng.uniform(0.005, 0.02)), "spread_r": float(rng.uniform(0.05, 0.15)),
        "spread_soc": float(rng.uniform(0.0, 0.02)),
        "v_off": float(rng.uniform(0.0, 0.005)), "v_noise": float(rng.uniform(0.001, 0.006)),
        "i_gain": float(rng.uniform(-0.01, 0.01)), "i_off_c": float(rng.uniform(-1 / 300, 1 / 300)),
        "i_noise": float(rng.uniform(0.001, 0.010)),
        "period_s": float(rng.choice([2.0, 5.0, 10.0])),
    }


def draw(family, seed):
    """One scenario: {"family", "seed", "segs", "soc0", "cond"} (segs as in profiles.py)."""
    rng = np.random.default_rng([seed, FAMILIES.index(family), 15])
    cond = conditions(rng)          # first, so a family's own draws do not move the conditions
    segs, soc0 = GENERATORS[family](rng)
    return {"family": family, "seed": seed, "segs": segs, "soc0": float(soc0), "cond": cond}


def digest(sc):
    """Content digest of a drawn scenario (profile to 1e-9 C, conditions to 1e-9)."""
    h = hashlib.sha256()
    h.update(json.dumps([sc["family"], sc["seed"], round(sc["soc0"], 9),
                         {k: round(v, 9) for k, v in sorted(sc["cond"].items())}]).encode())
    for kind, val in sc["segs"]:
        h.update(kind.encode())
        h.update(val.encode() if isinstance(val, str) else np.round(np.asarray(val, float), 9).tobytes())
    return h.hexdigest()[:16]


def plan():
    """The split: tuning = 3 seeds of each tuning family (seeds 1..); test = 4 other seeds (1001..) of
    each test family. 12 + 20 = 32 scenarios per cell set."""
    tuning = [{"id": "%s-%d" % (f, s), "family": f, "seed": s} for f in TUNING_FAMILIES for s in (1, 2, 3)]
    test = [{"id": "%s-%d" % (f, s), "family": f, "seed": s} for f in TEST_FAMILIES
            for s in (1001, 1002, 1003, 1004)]
    return tuning, test


def write_sets(path=SETS):
    tuning, test = plan()
    for row in test:
        row["digest"] = digest(draw(row["family"], row["seed"]))
    doc = {"about": "SoC benchmark split (bench/soc/generator.py, bench/soc/locked.py). The test set is run "
                    "to report, never to tune: bench.soc.quick refuses its scenarios; a changed test "
                    "scenario changes its digest and bench/soc/test_plumbing.py fails until this file is "
                    "deliberately rewritten (python -m bench.soc.generator --write).",
           "tuning_families": list(TUNING_FAMILIES), "test_families": list(TEST_FAMILIES),
           "truth_models": {"tuning": ["SPMe"], "test": ["SPMe", "DFN"]},
           "tuning": tuning, "test": test}
    path.write_text(json.dumps(doc, indent=1) + "\n")


def load_sets(path=SETS):
    return json.loads(path.read_text())


if __name__ == "__main__":
    import sys
    if "--write" in sys.argv:
        write_sets()
        print("wrote", SETS)
    else:
        for name in ("tuning", "test"):
            for row in load_sets()[name]:
                sc = draw(row["family"], row["seed"])
                n = sum(len(v) for k, v in sc["segs"] if k == "dc")
                print(name, row["id"], "%.2f" % sc["soc0"], "%.1f h dc" % (n * DT / 3600),
                      "%.0f C" % sc["cond"]["temp_c"], digest(sc))
