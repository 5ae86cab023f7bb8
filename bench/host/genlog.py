"""Write a synthetic log in the packwatch CSV schema (a week of 10 Hz data = 6 048 000 rows).

usage: python bench/host/genlog.py OUT.csv [ROWS]
"""
import sys
import time

import numpy as np


def generate(path, rows=6_048_000, n_cells=16, n_temps=3, block=200_000, seed=1):
    from packwatch.logcsv import LogWriter
    rng = np.random.default_rng(seed)
    w = LogWriter(path, n_cells, n_temps, meta={"fmt": 1, "fw": "0.1.0", "board": "pico"})
    t0 = 1_700_000_000
    for start in range(0, rows, block):
        n = min(block, rows - start)
        t = (start + np.arange(n)) * 0.1
        i = 20 * np.sin(t / 3600.0) + rng.normal(0, 0.5, n)
        soc = 50 + 40 * np.sin(t / 7200.0)
        cells = 3.25 + 0.002 * soc[:, None] + rng.normal(0, 0.002, (n, n_cells))
        temps = 25 + 5 * np.sin(t / 5000.0)[:, None] + rng.normal(0, 0.2, (n, n_temps))
        alarm = ((t % 20000) < 30).astype(int)
        cols = [t, i, *cells.T, *temps.T]
        fmt = ",".join(["%.3f", "%.3f"] + ["%.3f"] * n_cells + ["%.1f"] * n_temps)
        lines = []
        for k in range(n):
            ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t0 + t[k]))
            lines.append(fmt % tuple(c[k] for c in cols) + ",%sZ,%d,%d,%.3f,%.1f,%.1f,%d,0\n" % (
                ts, int(t[k] * 1000), start + k, cells[k].sum(), soc[k], 2.0, alarm[k]))
        w._buf.append("".join(lines))
        w.flush()
    w.close()


if __name__ == "__main__":
    sys.path.insert(0, "host")
    generate(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 6_048_000)
