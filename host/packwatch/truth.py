"""The plant's truth beside a virtual board's log: `packwatch sim --truth FILE.csv`, `packwatch demo`.

The truth file is a log in the packwatch log schema (packwatch.logcsv), written with its LogWriter,
so `packwatch plot`, `packwatch.api.open_log` and every reader take it as they take a board's log:

* ``t_s``: virtual time of the plant in s (since the virtual board started; it runs on through the
  board's reboots); ``current_a`` (+ = charging, after the power path), ``cell01_v`` …
  (the cells as they are, without the AFE's noise and offsets), ``temp1_c`` … ``temp7_c``: the
  plant's temperatures where the sensors sit (hil.plant.SENSORS, the same order as a board's
  ``temp1_c`` …: three MCU NTCs, BQ76952 TS1–TS3, the AFE's die);
* ``dev_ms``: the firmware's clock (ticks_ms) at that step — a report sampled at that step carries
  the same ``ms``, and the board's log has it as ``dev_ms``; ``boot``: which start of the board
  (1 = the first; ``dev_ms`` restarts on every boot);
* ``stack_v``; ``soc_pct``: the pack SoC as the firmware defines it (charge until the first cell is
  empty over that plus the room until the first cell is full, docs/benchmarks.md), so the board's
  ``soc_pct`` and the truth's compare directly; ``cell01_soc_pct`` …: each cell's SoC;
* ``fet``: the power path as the plant has it (bit 0 charge: relay and the AFE's CHG FET, bit 1
  discharge: relay and DSG FET).

``log_times`` maps truth rows onto a board log's ``t_s`` by (boot, dev_ms), for `plot --truth`.
"""
import numpy as np

from .logcsv import LogWriter

N_TEMPS = 7
EVERY_MS = 1000  # a truth row per report period (1 s) by default


def extra_columns(n_cells):
    return (["dev_ms", "boot", "stack_v", "soc_pct"] + ["cell%02d_soc_pct" % (k + 1) for k in range(n_cells)]
            + ["fet"])


class TruthWriter:
    """Write a virtual board's truth rows (VirtualBoard(truth_every_ms=…).truth) to ``path``."""

    def __init__(self, path, vb):
        from hil.plant import SENSORS

        n = vb.plant.n_cells
        meta = {"source": "plant truth (packwatch.truth)", "scenario": vb.scenario.name, "seed": vb.seed,
                "chem": vb.chemistry, "cells": n, "uid": vb.serial, "temps": " ".join(SENSORS),
                "t_s": "virtual time of the plant", "align": "boot + dev_ms = a report's boot + ms"}
        self.n_cells = n
        self.writer = LogWriter(path, n, N_TEMPS, extra_columns(n), meta)

    def drain(self, vb):
        """Write the rows gathered since the last call (and drop them from the board's list)."""
        with vb._lock:
            rows, vb.truth = vb.truth, []
        for row in rows:
            self.write(row)
        self.writer.flush()
        return len(rows)

    def write(self, row):
        t_ms, i_ma, stack_mv10, cells_mv10, temps_dc, soc, relay, fw_ms, boot, pack_soc = row[:10]
        path = row[10] if len(row) > 10 else (7 if relay else 0)  # bit 0 relay, 1 CHG, 2 DSG (Plant.path)
        fet = (1 if path & 3 == 3 else 0) | (2 if path & 5 == 5 else 0)  # charge: relay and CHG; discharge: relay and DSG
        temps = [t / 10.0 for t in temps_dc[:N_TEMPS]]
        extra = [fw_ms, boot, stack_mv10 / 1e4, pack_soc * 100.0]  # formats: logcsv (soc_pct 0.1 %, as a board)
        extra += ["%.3f" % (s * 100.0) for s in soc] + [fet]
        self.writer.write_row(t_ms / 1000.0, i_ma / 1000.0, [c / 1e4 for c in cells_mv10], temps, extra)

    def close(self):
        self.writer.close()


def _segments(dev_ms):
    """Index ranges [a, b) in which a device clock only moves forwards (it restarts on a reboot)."""
    d = np.asarray(dev_ms, float)
    cuts = np.flatnonzero(np.diff(d) < 0) + 1
    edges = np.concatenate(([0], cuts, [len(d)]))
    return list(zip(edges[:-1], edges[1:]))


def log_times(truth_dev_ms, truth_boot, log_dev_ms, log_t_s):
    """The board log's ``t_s`` for each truth row (nan where the log has no such time).

    The log has no boot column; its boots are where ``dev_ms`` goes back. They are paired with the
    truth's boots from the last one backwards (a log started late misses the first boots, never the
    last), and within a boot ``t_s`` is interpolated in ``dev_ms``, never extrapolated."""
    tb = np.asarray(truth_boot, float)
    tm = np.asarray(truth_dev_ms, float)
    ld = np.asarray(log_dev_ms, float)
    lt = np.asarray(log_t_s, float)
    ok = ~np.isnan(ld)
    ld, lt = ld[ok], lt[ok]
    out = np.full(len(tm), np.nan)
    boots = [b for b in np.unique(tb[~np.isnan(tb)])][::-1]
    for (a, b), boot in zip(_segments(ld)[::-1], boots):
        sel = tb == boot
        x = tm[sel]
        inside = (x >= ld[a]) & (x <= ld[b - 1])
        y = np.full(len(x), np.nan)
        y[inside] = np.interp(x[inside], ld[a:b], lt[a:b])
        out[sel] = y
    return out


def soc_agreement(log, truth):
    """The board's SoC against the plant's: {'n', 'rmse', 'max', 'in_3sigma'} (percentage points; the
    share of reports with |error| <= 3 x their soc_sigma_pct), over the reports nearest to a truth
    row of their boot (within 0.5 s: rows are a second apart, and a reboot shifts their phase against
    the board's clock; 0.5 s moves the SoC by 0.014 points at 1C). ``log``, ``truth``: logcsv.Log."""
    t = log_times(truth.cols["dev_ms"], truth.cols["boot"], log.cols["dev_ms"], log.t_s)
    ok = ~np.isnan(t)
    t, want = t[ok], truth.cols["soc_pct"][ok]
    lt = np.asarray(log.t_s, float)
    if not len(lt):
        t = t[:0]
    k = np.clip(np.searchsorted(lt, t), 1, max(1, len(lt) - 1))
    k = np.where(np.abs(lt[k - 1] - t) <= np.abs(lt[np.minimum(k, len(lt) - 1)] - t), k - 1, k)
    k = np.minimum(k, max(0, len(lt) - 1))
    hit = np.abs(lt[k] - t) <= 0.5 if len(lt) else np.zeros(0, bool)
    err = log.cols["soc_pct"][k[hit]] - want[hit]
    sig = log.cols["soc_sigma_pct"][k[hit]]
    good = ~np.isnan(err) & ~np.isnan(sig)
    err, sig = err[good], sig[good]
    if not len(err):
        return {"n": 0, "rmse": float("nan"), "max": float("nan"), "in_3sigma": float("nan")}
    return {"n": int(len(err)), "rmse": float(np.sqrt(np.mean(err ** 2))), "max": float(np.max(np.abs(err))),
            "in_3sigma": float(np.mean(np.abs(err) <= 3 * sig + 0.1))}  # + the logs' 0.1 % steps
