"""The locked-set report from what is already scored in bench/soc/cache/ (runs nothing at all).

`python -m bench.soc.locked_cached` -> bench/results/soc_locked.md, like `python -m bench.soc.locked
--report-only`, except that a scenario whose estimator scores are not cached for the current sources
(a run cut short) is listed as not run instead of being scored again.
"""
import sys
import time

from bench.soc import accuracy as A
from bench.soc import locked as L


def _scores_only(kind, args, fn, _real=A.cached):
    if kind in ("gdriver", "gcells", "gscore", "gpeers"):
        key = "%s-%s" % (kind, A._digest([kind, args, A._src_tag()]))
        if not (A.CACHE / (key + ".npz")).exists():
            raise L.NotRun(kind)
    return _real(kind, args, fn)


def main(argv=None):
    A.cached = _scores_only
    t0 = time.time()
    chars, results = L.evaluate()
    text = "\n".join(L.report(chars, results, time.time() - t0))
    L.RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    main(sys.argv[1:])
