"""`make bench-soc`: SoC benchmarks -> bench/results/soc.md.

Runs the cost benchmark (pwfw.soc and a naive float EKF under the real MicroPython unix port,
bench/soc/cost.py) and the accuracy benchmark against PyBaMM ground truth (bench/soc/accuracy.py:
LFP and NMC, fit-only characterisation, four validation scenarios, sensor errors, aged 16S pack;
pwfw.soc vs coulomb counting vs filterpy's UKF) and the generated tuning set beside the locked test
set (bench/soc/locked.py). PyBaMM runs are cached in bench/soc/cache/.
"""
from pathlib import Path

from bench.soc import accuracy, cost, locked

ROOT = Path(__file__).resolve().parents[2]


def main():
    cost.main()
    accuracy.main()
    locked.main([])
    res = ROOT / "bench/results"
    head = "## State of charge (issue 4)\n\n"
    text = head + (res / "soc_accuracy.md").read_text() + "\n" + (res / "soc_locked.md").read_text() + \
        "\n" + (res / "soc_cost.md").read_text()
    (res / "soc.md").write_text(text + "\nReproduce: `make bench-soc` "
                                "(= `PYBAMM_DISABLE_TELEMETRY=true .venv/bin/python -m bench.soc.run`).\n")


if __name__ == "__main__":
    main()
