"""Tuning loop on the tuning set only (issue 15): pwfw.soc beside coulomb counting, per scenario.

`python -m bench.soc.tune [--cellsets lfp-prada2013,...] [--only inverter-1,...] [--jobs 2]`

Runs nothing in PyBaMM: the tuning set's truth must be in bench/soc/cache/ (`python -m bench.soc.locked`
puts it there). Never reads the locked test set (sets.json "test"): that one is run once, to report.
"""
import sys
import time

import numpy as np

from bench.soc import accuracy as A
from bench.soc import generator as G
from bench.soc import locked as L
from bench.soc import truth


def _one(a):
    cs, row = a
    A.cached = L._cached_only
    model, xf, xe = L.characterise(cs)
    sc = G.draw(row["family"], row["seed"])
    try:
        t, i, v, soc = L.simulate(cs, "SPMe", sc, xf, xe)
    except L.NotRun:
        return cs, row["id"], None
    except Exception as e:  # a failed truth run is listed, it does not stop the loop
        return cs, row["id"], "%s: %s" % (type(e).__name__, str(e).splitlines()[0][:100])
    tl, im, vm, idx = L.log_of(sc, cs, t, i, v)
    tp = A.pack_soc(soc[idx])
    out = {}
    for lab, st in L.starts_of(float(tp[0])).items():
        s, sig, _ = A.run_pwfw(model, tl, im, vm, st, round(sc["cond"]["temp_c"], 1))
        out[lab] = A.metrics(tl, s, tp, sig)
        if lab == "true":
            c, _ = A.run_cc(model, tl, im, st)
            out["cc"] = A.metrics(tl, c, tp, None)
    out["info"] = "%.0f h, %g C, %s..%s" % ((tl[-1] - tl[0]) / 3600, sc["cond"]["temp_c"],
                                              round(tp.min() * 100), round(tp.max() * 100))
    return cs, row["id"], out


def main(argv=None):
    import argparse
    import multiprocessing as mp
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cellsets", default=",".join(truth.CELLSETS))
    ap.add_argument("--only", default="")
    ap.add_argument("--jobs", type=int, default=2)
    a = ap.parse_args(argv)
    only = set(a.only.split(",")) - {""}
    rows = [r for r in G.load_sets()["tuning"] if not only or r["id"] in only]
    jobs = [(cs, r) for cs in a.cellsets.split(",") for r in rows]
    t0 = time.time()
    with mp.get_context("fork").Pool(a.jobs) as pool:
        res = pool.map(_one, jobs, chunksize=1)
    summ = {}
    for cs, sid, out in res:
        if not isinstance(out, dict):
            print("%-15s %-12s %s" % (cs, sid, out or "not cached"))
            continue
        t = out["true"]
        w = [out[k] for k in ("+30 %", "-30 %") if k in out]
        print("%-15s %-12s rmse %5.2f (cc %5.2f) max30 %5.1f (cc %5.1f) cov %3.0f | wrong: rmse %s cov %s | %s" % (
            cs, sid, 100 * t["rmse"], 100 * out["cc"]["rmse"], 100 * t["max30"], 100 * out["cc"]["max30"],
            100 * t["cover"], " ".join("%5.2f" % (100 * m["rmse"]) for m in w),
            " ".join("%3.0f" % (100 * m["cover"]) for m in w), out["info"]))
        s = summ.setdefault(cs, {"rmse": [], "max30": [], "cc": [], "cov": [], "ccmax": []})
        s["rmse"].append(t["rmse"])
        s["max30"].append(t["max30"])
        s["cc"].append(out["cc"]["rmse"])
        s["ccmax"].append(out["cc"]["max30"])
        s["cov"] += [m["cover"] for m in w] + [t["cover"]]
    for cs, s in summ.items():
        p = lambda x: np.percentile(x, 95) * 100  # noqa: E731
        print("%-15s p95 rmse %.2f (cc %.2f) p95 max30 %.1f (cc %.1f) min cover %.0f %%" % (
            cs, p(s["rmse"]), p(s["cc"]), p(s["max30"]), p(s["ccmax"]), 100 * min(s["cov"])))
    print("%.0f s" % (time.time() - t0), file=sys.stderr)


if __name__ == "__main__":
    main()
