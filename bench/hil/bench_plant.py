"""Time Plant.step() as the virtual-board runner uses it (every 100 ms of virtual time).

Run: .venv/bin/python bench/hil/bench_plant.py   (target: step() <= 40 us for 16 cells)
"""
import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from hil.scenarios import get  # noqa: E402


def best_us(fn, number=5000, repeat=7):
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def main():
    rows = []
    for name in ("demo", "nmc_day"):
        pl = get(name).make_plant(0)
        for _ in range(100):
            pl.step(100, True)

        def step():
            pl.step(100, True)

        def step_and_read():
            pl.step(100, True)
            pl.cells_mv10, pl.stack_mv10, pl.i_ma, pl.temps_dc

        rows.append((name, pl.n_cells, best_us(step), best_us(step_and_read)))
    print("%-10s %5s %12s %22s" % ("scenario", "cells", "step() us", "step()+runner reads us"))
    for name, n, a, b in rows:
        print("%-10s %5d %12.1f %22.1f" % (name, n, a, b))
    md = ["# Pack plant (hil/plant.py)", "", "command: `.venv/bin/python bench/hil/bench_plant.py` (best of 7 x 5000)", "",
          "| scenario | cells | step() µs | step() + the runner's reads µs |", "|---|---:|---:|---:|"]
    md += ["| %s | %d | %.1f | %.1f |" % r for r in rows]
    out = Path(__file__).resolve().parents[2] / "bench" / "results" / "plant.md"
    out.write_text("\n".join(md) + "\n")
    return rows


if __name__ == "__main__":
    main()
