"""plot: the binned envelope keeps true extremes and alarms; the figure is written."""
import numpy as np

from packwatch.logcsv import LogWriter
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
