"""Quick pwfw.soc iteration on the cached PyBaMM runs (no cache writes for estimators).

.venv/bin/python -m bench.soc.quick lfp shallow,solar_day [wrong]
"""
import sys
import time

import numpy as np

from bench.soc import accuracy as A


def main():
    chem = sys.argv[1] if len(sys.argv) > 1 else "lfp"
    names = (sys.argv[2] if len(sys.argv) > 2 else ",".join(A.profiles.SCENARIOS)).split(",")
    wrong = len(sys.argv) > 3
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


if __name__ == "__main__":
    main()
