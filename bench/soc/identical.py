"""Prove a pwfw.soc refactor changes no result: feed the same plant samples to two versions of soc.py and
compare every update's outputs (soc_pm, sigma_pm, cell_soc_pm, cap_mah, syncs, cap_learns) and the
persisted state at the end.

.venv/bin/python -m bench.soc.identical OLD_SOC.py [NEW_SOC.py]   (NEW defaults to firmware/pwfw/soc.py;
OLD e.g. from `git show REV:firmware/pwfw/soc.py > /tmp/soc_old.py`). Exit 1 on the first difference.
"""
import importlib.util
import json
import sys
from array import array
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for p in (ROOT, ROOT / "firmware", ROOT / "host"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from hil.scenarios import get  # noqa: E402

# (scenario, hours, model, start per mille or None = first boot, seed): every branch of the estimator:
# discharge to cut-off (0 % sync), CV tail (100 % sync), long rests, capacity learning, wrong starts, NMC
CASES = [("demo", 3.0, "lfp", None, 1), ("deep_discharge", 1.0, "lfp", 300, 2), ("charge_ov", 1.5, "lfp", 900, 3),
         ("weak_cell", 2.0, "lfp", 500, 4), ("nmc_day", 8.0, "nmc", 100, 5), ("day", 10.0, "lfp", 850, 6)]


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _outputs(e):
    return (e.soc_pm, e.sigma_pm, bytes(e.cell_soc_pm), e.cap_mah, e.syncs, e.cap_learns, e.fault)


def compare(old, new, case):
    scen, hours, chem, start, seed = case
    model = json.loads((ROOT / "firmware/pwfw/models" / (chem + ".json")).read_text())
    plant = get(scen).make_plant(seed)
    n = len(plant.cells_mv10)
    ests = [m.Estimator(m.load_model(model), n, 100000) for m in (old, new)]
    if start is not None:
        for e in ests:
            e.set_soc(start)
    cells = array("h", [0] * n)
    relay = True
    steps = int(hours * 36000)
    for k in range(steps):
        plant.step(100, relay)
        for c, v in enumerate(plant.cells_mv10):
            cells[c] = int(v) // 10
        relay = min(cells) > 2600 and max(cells) < (3650 if chem == "lfp" else 4200)
        dt = 100 if k % 997 else 1300          # now and then a long step (split in update)
        for e in ests:
            e.update(dt, int(plant.i_ma), cells, 250)
        a, b = (_outputs(e) for e in ests)
        if a != b:
            raise SystemExit("%s: update %d differs: old %r new %r" % (scen, k, a, b))
    if ests[0].state() != ests[1].state():
        raise SystemExit("%s: persisted state differs: %r / %r" % (scen, ests[0].state(), ests[1].state()))
    return steps, ests[1]


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    old = _load(argv[0], "soc_old")
    new = _load(argv[1] if len(argv) > 1 else str(ROOT / "firmware/pwfw/soc.py"), "soc_new")
    total = 0
    for case in CASES:
        steps, e = compare(old, new, case)
        total += steps
        print("%-15s %7d updates identical (end: soc %d pm, sigma %d pm, cap %d mAh, syncs %d, learns %d)"
              % (case[0], steps, e.soc_pm, e.sigma_pm, e.cap_mah, e.syncs, e.cap_learns), flush=True)
    print("all %d updates identical" % total)


if __name__ == "__main__":
    main()
