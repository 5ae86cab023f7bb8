"""Quick pwfw.soc iteration on the cached PyBaMM runs (no cache writes for estimators).

.venv/bin/python -m bench.soc.quick lfp shallow,solar_day [wrong]
.venv/bin/python -m bench.soc.quick lfp-prada2013 inverter-1,solar-2     (generated tuning-set scenarios)

Only tuning scenarios: a scenario of the locked test set (bench/soc/sets.json) is refused.
"""
import sys
import time

import numpy as np

from bench.soc import accuracy as A


def main():
    chem = sys.argv[1] if len(sys.argv) > 1 else "lfp"
    names = (sys.argv[2] if len(sys.argv) > 2 else ",".join(A.profiles.SCENARIOS)).split(",")
    wrong = len(sys.argv) > 3
    from bench.soc import generator as G
    sets = G.load_sets()
    locked = [n for n in names if n in {r["id"] for r in sets["test"]}]
    if locked:
        raise SystemExit("%s: in the locked test set (bench/soc/sets.json), which is run to report "
                         "(python -m bench.soc.locked), never to tune; pick tuning scenarios: %s"
                         % (", ".join(locked), ", ".join(r["id"] for r in sets["tuning"])))
    tune = {r["id"]: r for r in sets["tuning"]}
    if any(n in tune for n in names):
        return _generated(chem, [tune[n] for n in names if n in tune], wrong)
    model, xf, xe, _ = A.characterise(chem)
    for name in names:
        t, i, v, soc, soc0 = A.validation_run(chem, name, xf, xe, None)
        truth = A.pack_soc(soc)
        im, vm = A.sensors(chem, name, t, i, v)
        starts = [("true", float(truth[0]))]
        if wrong:
            starts += [("+30", float(truth[0]) + A.WRONG), ("-30", float(truth[0]) - A.WRONG)]
        cc, _ = A.run_cc(model, t, im, float(truth[0]))
        mc = A.metrics(t, cc, truth, None)
        for lab, st in starts:
            t0 = time.time()
            s, sig, cells = A.run_pwfw(model, t, im, vm, st)
            m = A.metrics(t, s, truth, sig)
            m.update(A.cell_metrics(t, cells, soc))
            print("%s %-10s %-4s rmse %.1f max30 %.1f cover %.0f conv %s | cells rmse %.1f max30 %.1f"
                  " | cc rmse %.1f max30 %.1f | %.0fs"
                  % (chem, name, lab, 100 * m["rmse"], 100 * m["max30"], 100 * m["cover"],
                     "%.0f" % (m["conv_s"] / 60), 100 * m["cell_rmse"], 100 * m["cell_max30"],
                     100 * mc["rmse"], 100 * mc["max30"],
                     time.time() - t0), flush=True)
            if lab == "true":
                np.savez("/tmp/q_%s_%s.npz" % (chem, name), t=t, s=s, sig=sig, truth=truth, cc=cc, im=im,
                         vm=vm.mean(axis=1))


def _generated(cellset, rows, wrong):
    from bench.soc import generator as G
    from bench.soc import locked as L
    if cellset not in L.truth.CELLSETS:
        raise SystemExit("unknown cell set %r (generated scenarios: %s)" % (cellset, ", ".join(L.truth.CELLSETS)))
    char = L.characterise(cellset)
    for row in rows:
        r = L.score(cellset, "SPMe", G.draw(row["family"], row["seed"]), *char)
        for key, m in r["rows"].items():
            if wrong or key.endswith("|true"):
                print("%s %-12s %-20s rmse %.1f max30 %.1f cover %s" % (
                    cellset, row["id"], key, 100 * m["rmse"], 100 * m["max30"],
                    "–" if m["cover"] is None else "%.0f" % (100 * m["cover"])), flush=True)


if __name__ == "__main__":
    main()
