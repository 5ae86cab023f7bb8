"""The power-path state (`fet` in `rep`, docs/protocol.md): decoded, logged as the `fet` column (old logs
without it still read), and shown by `live`."""
import numpy as np
import pytest

from packwatch.live import render
from packwatch.logcsv import LOGGER_COLS, LogWriter, read_log
from packwatch.protocol import encode_frame, power_path
from packwatch.session import Session

HDR = {"fw": "0.1.0", "fmt": 1, "board": "sim", "chem": "lfp", "cells": 2, "reset": "power", "boots": 1, "uid": "u"}


def rep(seq, **kw):
    f = {"seq": seq, "ms": 1000 * seq, "cell_mv": [3300, 3301], "stack_mv": 6601, "i_ma": -1500, "t_dc": [250],
         "soc_pm": 500, "sig_pm": 20, "alarm": 0, "fault": 0}
    f.update(kw)
    return f


def log_of(tmp_path, reps):
    writers = []

    def open_writer(n_cells, n_temps, meta):
        writers.append(LogWriter(tmp_path / "x.csv", n_cells, n_temps, LOGGER_COLS, meta=meta))
        return writers[-1]

    s = Session(open_writer)
    s.lines(1.0, [encode_frame("hdr", HDR).rstrip(b"\n")])
    for k, f in enumerate(reps):
        s.lines(2.0 + k, [encode_frame("rep", f).rstrip(b"\n")])
    s.close()
    return read_log(tmp_path / "x.csv")


@pytest.mark.parametrize("fet,words", [
    (3, "closed (charge, discharge)"),   # bit 0 charge + bit 1 discharge closed: the one relay is on
    (0, "open (charge, discharge)"),
    (1, "charge closed, discharge open"),
    (2, "charge open, discharge closed"),
    (15, "closed (charge, discharge)"), (4, "open (charge, discharge)"),  # bits 2-3: the AFE's FETs, not the path
    (None, None), ("3", None), (16, None), (-1, None),  # absent (older firmware) or not a valid bitmask
])
def test_power_path_words(fet, words):
    assert power_path(fet) == words


def test_fet_column_logged_per_report(tmp_path):
    fets = [3, 3, 0, 0, 1, 2, 3]
    log = log_of(tmp_path, [rep(k, fet=v) for k, v in enumerate(fets)])
    assert "fet" in log.names
    np.testing.assert_array_equal(log.cols["fet"], fets)
    assert log.meta["units"].split().count("fet=bitmask") == 1


def test_report_without_fet_logs_unknown(tmp_path):
    log = log_of(tmp_path, [rep(0), rep(1, fet=3), rep(2, fet="x")])
    f = log.cols["fet"]
    assert np.isnan(f[0]) and f[1] == 3 and np.isnan(f[2])


def test_old_log_without_fet_column_still_reads(tmp_path):
    old_cols = [c for c in LOGGER_COLS if c != "fet"]
    assert len(old_cols) == len(LOGGER_COLS) - 1
    with LogWriter(tmp_path / "old.csv", 2, 1, old_cols, meta={"fmt": 1}) as w:
        for k in range(5):
            w.write_row(k, -1.5, [3.3, 3.301], [25.0], {"seq": k, "alarm": 0, "fault": 0})
    log = read_log(tmp_path / "old.csv")
    assert len(log) == 5 and "fet" not in log.cols
    np.testing.assert_array_equal(log.cols["seq"], range(5))


def test_live_shows_the_power_path():
    hdr = {"chem": "lfp", "board": "sim", "fw": "0.1.0", "uid": "u"}
    lines = render(rep(1, fet=3), hdr).splitlines()
    assert "power path: closed (charge, discharge)" in lines
    assert "power path: open (charge, discharge)" in render(rep(1, fet=0), hdr).splitlines()
    assert "power path: charge closed, discharge open" in render(rep(1, fet=1), hdr).splitlines()
    assert not any("power path" in ln for ln in render(rep(1), hdr).splitlines())  # older firmware: not known
    coloured = render(rep(1, fet=0), hdr, color=True)
    assert "power path: \x1b[31mopen (charge, discharge)\x1b[0m" in coloured  # open in red, as alarms are
