"""plot: the binned envelope keeps true extremes and alarms; the figure is written."""
import numpy as np

from packwatch.logcsv import LOGGER_COLS, LogWriter
from packwatch import plot as pwplot


def _log(path, n=20000, spike_at=12345):
    rng = np.random.default_rng(3)
    with LogWriter(path, 4, 2, meta={"fmt": 1, "fw": "0.1.0"}) as w:
        for i in range(n):
            cells = 3.3 + rng.normal(0, 0.002, 4)
            if i == spike_at:
                cells[2] = 3.7   # one-row spike: an envelope must keep it
            w.write_row(i * 0.1, np.sin(i / 500) * 10, cells, [25.0, None],
                        {"stack_v": cells.sum(), "soc_pct": 50 + i / n * 40, "soc_sigma_pct": 2.0,
                         "alarm": 1 if 15000 <= i < 15010 else 0, "seq": i})
    return path


def test_summary_keeps_extremes_and_alarms(tmp_path):
    p = _log(tmp_path / "l.csv")
    b, names, meta, est = pwplot.summarize(p, workers=1, max_points=200)
    assert 100 <= len(b["t"]) <= 400          # decimated, not 20000 points
    assert abs(b["vmax"].max() - 3.7) < 1e-9  # the single-row spike survives decimation
    assert b["spread"].max() > 0.35
    al = np.flatnonzero(b["alarm"])
    assert len(al) >= 1 and all(1490 <= b["t_min"][k] <= 1501 for k in al)
    assert np.all(b["soc_lo"] <= b["soc"]) and np.all(b["soc_hi"] >= b["soc"])
    assert np.isnan(b["temp1"]).all() and np.allclose(b["temp0"], 25.0)


def test_parallel_ranges_match_serial(tmp_path, monkeypatch):
    p = _log(tmp_path / "l.csv", n=6000)
    one, *_ = pwplot.summarize(p, workers=1, max_points=100)
    # force the byte-range split on a small file
    parts = []
    size = p.stat().st_size
    for a, c in ((0, size // 2), (size // 2, size)):
        parts += pwplot._work((str(p), a, c, max(1, 6000 // 100), ["t_s", "current_a", "stack_v", "soc_pct",
                                                                    "soc_sigma_pct", "alarm"]))
    two = pwplot._merge(parts)
    assert abs(one["vmax"].max() - two["vmax"].max()) < 1e-12
    assert sum(len(x["t"]) for x in parts) >= len(one["t"])
    assert np.isclose(two["t_min"][0], 0.0) and np.isclose(two["t"].max(), one["t"].max(), atol=6)


def test_plot_writes_png(tmp_path):
    p = _log(tmp_path / "l.csv", n=3000, spike_at=10)
    out = pwplot.plot(p, tmp_path / "f.png", workers=1)
    data = open(out, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20000


# --- the figure's content, through matplotlib's objects -------------------------------------------------------
# Bit positions and names as docs/protocol.md publishes them (alarm: cell_ov 0, oc_dsg 5; fault: ntc 3).
CELL_OV, OC_DSG, NTC = 1 << 0, 1 << 5, 1 << 3


def _state_log(path, n=600, fet=True, meta=None, n_cells=14):
    """n rows at 0.1 s; cell_ov on rows 100..149, oc_dsg on 120..199 (overlapping), fault ntc on 300..309;
    with ``fet``, the charge path is open on rows 200..259 and both paths on 400..409."""
    extra = tuple(c for c in LOGGER_COLS if c != "fet") + (("fet",) if fet else ())  # without: an old log
    rng = np.random.default_rng(5)
    rows = []
    with LogWriter(path, n_cells, 1, extra, meta=meta or {"fmt": 1, "chem": "nmc", "cells": n_cells,
                                                           "board": "sim"}) as w:
        for i in range(n):
            cells = np.round(3.7 + rng.normal(0, 0.003, n_cells), 3)
            cur = round(float(-20 + 30 * np.sin(i / 50)), 3)
            alarm = (CELL_OV if 100 <= i < 150 else 0) | (OC_DSG if 120 <= i < 200 else 0)
            fault = NTC if 300 <= i < 310 else 0
            f = 0 if 400 <= i < 410 else 2 if 200 <= i < 260 else 3
            w.write_row(i * 0.1, cur, cells, [25.0],
                        {"stack_v": round(float(cells.sum()), 3), "soc_pct": 60.0, "soc_sigma_pct": 1.0,
                         "alarm": alarm, "fault": fault, "seq": i, "fet": f})
            rows.append((cur, float(np.round(cells.sum(), 3)), f))
    return path, np.array(rows)


def _by_gid(fig, gid):
    found = [a for a in fig.findobj() if a.get_gid() == gid]
    assert len(found) == 1, (gid, len(found))
    return found[0]


def test_figure_title_names_chemistry_cells_and_the_exact_row_count(tmp_path):
    p, _ = _state_log(tmp_path / "n.csv", n=1234)
    title = pwplot.figure(p, title="my pack", workers=1)._suptitle.get_text()
    assert "my pack" in title and "14S NMC" in title and "1,234 rows" in title and "~" not in title
    # a log whose header names no chemistry (a foreign tool): the cell count of its columns
    q = _log(tmp_path / "l.csv", n=777)
    title = pwplot.figure(q, workers=1)._suptitle.get_text()
    assert "4 cells" in title and "777 rows" in title and "LFP" not in title


def test_figure_series_hold_the_logged_data(tmp_path):
    p, rows = _state_log(tmp_path / "s.csv", n=600)
    fig = pwplot.figure(p, workers=1)   # 600 rows < 4000 bins: one row per point
    for j in range(14):
        assert len(_by_gid(fig, "cell%02d" % (j + 1)).get_ydata()) == 600
    cur, pack = _by_gid(fig, "current"), _by_gid(fig, "pack")
    assert np.allclose(cur.get_ydata(), rows[:, 0]) and np.allclose(pack.get_ydata(), rows[:, 1])
    assert np.allclose(cur.get_xdata(), np.arange(600) * 0.1)
    # pack voltage and current each get their own panel, with room above and below the trace
    assert cur.axes is not pack.axes
    for line, data in ((pack, rows[:, 1]), (cur, rows[:, 0])):
        lo, hi = line.axes.get_ylim()
        room = 0.05 * (data.max() - data.min())
        assert lo < data.min() - room and hi > data.max() + room, (line.get_gid(), lo, hi)


def test_each_alarm_and_fault_has_its_own_colour_and_legend_entry(tmp_path):
    p, _ = _state_log(tmp_path / "a.csv", n=600)
    fig = pwplot.figure(p, workers=1)
    bars = {n: _by_gid(fig, n) for n in ("alarm:cell_ov", "alarm:oc_dsg", "fault:ntc")}
    colours = {n: tuple(np.round(b.get_facecolor()[0], 3)) for n, b in bars.items()}
    assert len(set(colours.values())) == 3, colours
    legends = [a.get_legend() for a in fig.axes if a.get_legend() is not None]
    names = [t.get_text() for lg in legends for t in lg.get_texts()]
    assert sorted(n for n in names if n in ("cell_ov", "cell_uv", "ot_chg", "ot_dsg", "oc_chg", "oc_dsg",
                                              "imbalance", "open_wire", "afe", "afe_crc", "current", "ntc",
                                              "store", "cmd")) == ["cell_ov", "ntc", "oc_dsg"]
    # the spans cover the rows that carried the bit: cell_ov rows 100..149 at 0.1 s, oc_dsg 120..199
    ext = {n: b.get_paths()[0].get_extents() for n, b in bars.items()}
    assert np.isclose(ext["alarm:cell_ov"].x0, 10.0) and np.isclose(ext["alarm:cell_ov"].x1, 15.0)
    assert np.isclose(ext["alarm:oc_dsg"].x0, 12.0) and np.isclose(ext["alarm:oc_dsg"].x1, 20.0)
    assert np.isclose(ext["fault:ntc"].x0, 30.0) and np.isclose(ext["fault:ntc"].x1, 31.0)


def test_fet_state_is_drawn_when_logged_and_old_logs_still_plot(tmp_path):
    p, rows = _state_log(tmp_path / "f.csv", n=600)
    fig = pwplot.figure(p, workers=1)
    chg, dsg = _by_gid(fig, "fet_charge").get_ydata(), _by_gid(fig, "fet_discharge").get_ydata()
    want = rows[:, 2].astype(int)
    assert np.array_equal(chg, want & 1) and np.array_equal(dsg, want >> 1 & 1)
    assert chg[200:260].sum() == 0 and dsg[200:260].all() and not dsg[400:410].any()
    # a log from before the column existed: no power-path series, no error
    q, _ = _state_log(tmp_path / "old.csv", n=600, fet=False)
    fig = pwplot.figure(q, workers=1)
    assert not [a for a in fig.findobj() if str(a.get_gid()).startswith("fet_")]
    assert _by_gid(fig, "alarm:cell_ov")


def test_decimated_figure_keeps_a_short_alarm(tmp_path):
    """A 10-row alarm in 20000 rows binned to 200 points still gets its bar and legend entry."""
    p = _log(tmp_path / "l.csv", n=20000)
    fig = pwplot.figure(p, workers=1, max_points=200)
    assert len(_by_gid(fig, "current").get_ydata()) <= 400
    bar = _by_gid(fig, "alarm:cell_ov")
    ext = bar.get_paths()[0].get_extents()
    assert ext.x0 <= 1500.0 / 60 <= ext.x1 + 1e-9  # minutes: rows 15000..15009 at 0.1 s
    names = [t.get_text() for a in fig.axes if a.get_legend() for t in a.get_legend().get_texts()]
    assert "cell_ov" in names
