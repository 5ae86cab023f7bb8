"""Balancing on the host (`bal` in `rep`, docs/protocol.md: bit k = cell k+1 bleeding): decoded, logged
as the `bal` column, marked by `live`, drawn per cell by `plot`."""
import numpy as np
import pytest

from packwatch.live import render
from packwatch.logcsv import LOGGER_COLS, LogWriter, read_log
from packwatch.plot import figure
from packwatch.protocol import balancing_cells, encode_frame
from packwatch.session import Session

N = 6
HDR = {"fw": "0.1.0", "fmt": 1, "board": "sim", "chem": "lfp", "cells": N, "reset": "power", "boots": 1, "uid": "u"}


def rep(seq, **kw):
    f = {"seq": seq, "ms": 1000 * seq, "cell_mv": [3300 + k for k in range(N)], "stack_mv": 19815, "i_ma": 1500,
         "t_dc": [250], "soc_pm": 950, "sig_pm": 20, "alarm": 0, "fault": 0, "fet": 15, "prot": 0}
    f.update(kw)
    return f


def log_of(tmp_path, reps, name="x.csv"):
    writers = []

    def open_writer(n_cells, n_temps, meta):
        writers.append(LogWriter(tmp_path / name, n_cells, n_temps, LOGGER_COLS, meta=meta))
        return writers[-1]

    s = Session(open_writer)
    s.lines(1.0, [encode_frame("hdr", HDR).rstrip(b"\n")])
    for k, f in enumerate(reps):
        s.lines(2.0 + k, [encode_frame("rep", f).rstrip(b"\n")])
    s.close()
    return tmp_path / name


@pytest.mark.parametrize("bal,cells", [
    (0, ()), (1, (1,)), (0b1010, (2, 4)), (1 << 15, (16,)),
    (None, None), ("5", None), (-1, None), (1 << 32, None), (True, None),  # absent or not a bitmask
])
def test_balancing_cells_words(bal, cells):
    assert balancing_cells(bal) == cells


def test_bal_column_logged_per_report(tmp_path):
    masks = [0, 0, 0b100, 0b100, 0b10100, 0]
    log = read_log(log_of(tmp_path, [rep(k, bal=m) for k, m in enumerate(masks)]))
    np.testing.assert_array_equal(log.cols["bal"], masks)
    assert log.meta["units"].split().count("bal=bitmask") == 1
    log = read_log(log_of(tmp_path, [rep(0), rep(1, bal="x")], "old.csv"))  # older firmware / garbage: unknown
    assert np.isnan(log.cols["bal"]).all()


def test_live_marks_balancing_cells():
    hdr = {"chem": "lfp", "board": "sim", "fw": "0.1.0", "uid": "u"}
    lines = render(rep(1, bal=0b100100), hdr).splitlines()
    marked = [ln.split()[0] for ln in lines if ln.startswith("cell") and ln.endswith(" bal")]
    assert marked == ["cell03", "cell06"]
    assert "balance cells 3 6" in lines
    assert "balance none" in render(rep(1, bal=0), hdr).splitlines()
    older = render(rep(1), hdr).splitlines()
    assert not any(ln.startswith("balance") or ln.endswith(" bal") for ln in older)
    assert all(len(ln) <= 80 for ln in lines)


def test_plot_shows_which_cells_balanced_when(tmp_path):
    # cell 2 balances from report 10 to 29, cell 5 from 20 to 39; t_s = 1 s per report from the first
    masks = [(2 if 10 <= k < 30 else 0) | (16 if 20 <= k < 40 else 0) for k in range(60)]
    fig = figure(log_of(tmp_path, [rep(k, bal=m) for k, m in enumerate(masks)]))
    assert "balance" in fig.panels
    got = {}
    for c in fig.panels["balance"].collections:
        if (c.get_gid() or "").startswith("bal:"):
            xs = np.concatenate([p.vertices[:, 0] for p in c.get_paths()])
            got[c.get_gid()] = (xs.min(), xs.max())
    assert set(got) == {"bal:cell02", "bal:cell05"}
    assert got["bal:cell02"] == pytest.approx((10.0, 30.0), abs=1.01)
    assert got["bal:cell05"] == pytest.approx((20.0, 40.0), abs=1.01)
    quiet = figure(log_of(tmp_path, [rep(k, bal=0) for k in range(20)], "quiet.csv"))
    assert "balance" not in quiet.panels  # nothing balanced: no panel
