"""`make bench-soc`: SoC benchmarks -> bench/results/soc.md.

Status: the cost benchmark (real MicroPython) runs; the PyBaMM accuracy benchmark is NOT implemented
yet (see pybamm_cells.py for the verified ground-truth cell setup). This file says so in its output
rather than print numbers from a non-independent simulator.
"""
from pathlib import Path

from bench.soc import cost

ROOT = Path(__file__).resolve().parents[2]


def main():
    cost.main()
    text = (ROOT / "bench/results/soc_cost.md").read_text()
    head = ("## State of charge (issue 4)\n\nAccuracy against PyBaMM ground truth: **not measured yet** "
            "(benchmark not implemented; T0 tests check behaviour against an ECM simulator only).\n\n")
    (ROOT / "bench/results/soc.md").write_text(head + text + "\nReproduce: `make bench-soc`.\n")


if __name__ == "__main__":
    main()
