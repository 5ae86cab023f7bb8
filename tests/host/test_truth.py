"""Host: the plant's truth beside a board's log (packwatch.truth, `plot --truth`), without a board."""
import numpy as np
import pytest

from packwatch.logcsv import LogWriter, read_log
from packwatch.plot import figure, main as plot_main
from packwatch.truth import extra_columns, log_times


def test_log_times_pairs_boots_from_the_last_and_never_extrapolates():
    # truth: boot 1 (clock 0..5 s), boot 2 (clock 0..9 s); the log was started during boot 2 at its
    # clock 3 s and saw t_s 100 s there: boot 1 has no log time, boot 2 maps 1:1 within 3..9 s
    tb = [1] * 6 + [2] * 10
    tm = [k * 1000 for k in range(6)] + [k * 1000 for k in range(10)]
    ld = [3000, 5000, 9000]
    lt = [100.0, 102.0, 106.0]
    t = log_times(tm, tb, ld, lt)
    assert np.all(np.isnan(t[:6]))  # the first boot: not in the log
    assert np.all(np.isnan(t[6:9]))  # before the log started
    assert t[9:].tolist() == [100.0, 101.0, 102.0, 103.0, 104.0, 105.0, 106.0]


def test_log_times_with_a_reboot_inside_the_log():
    # the log saw both boots: its clock goes back at the reboot
    t = log_times([1000, 2000, 1000, 2000], [1, 1, 2, 2], [1000, 2000, 1000, 2000], [0.0, 1.0, 5.0, 6.0])
    assert t.tolist() == [0.0, 1.0, 5.0, 6.0]


def _write(path, rows, n_cells=2, extra=None):
    w = LogWriter(path, n_cells, 0, extra if extra is not None else ["dev_ms", "soc_pct", "soc_sigma_pct"])
    for r in rows:
        w.write_row(*r)
    w.close()


def test_plot_truth_draws_the_plants_soc_at_the_logs_times(tmp_path):
    log, truth = tmp_path / "log.csv", tmp_path / "truth.csv"
    _write(log, [(k, -1.0, [3.3, 3.3], None, [1000 + 1000 * k, 50.0 - k, 2.0]) for k in range(20)])
    # truth from clock 0 (before the log), one boot, SoC 60 % falling 1 point a second
    _write(truth, [(k, -1.0, [3.3, 3.3], None, [1000 * k, 1, 3.3, 60.0 - k, 60.0 - k, 60.0 - k, 3])
                   for k in range(25)], extra=extra_columns(2))
    assert read_log(truth).cols["boot"][0] == 1
    fig = figure(str(log), truth=str(truth))
    line = next(ln for ln in fig.panels["soc"].get_lines() if ln.get_gid() == "soc_truth")
    x, y = line.get_data()
    assert len(x) == 20 and x[0] == 0.0 and y[0] == 59.0  # truth at clock 1000 = the log's first row


def test_plot_truth_refuses_a_file_that_is_not_a_truth_file(tmp_path, capsys):
    log = tmp_path / "log.csv"
    _write(log, [(k, -1.0, [3.3, 3.3], None, [1000 * k, 50.0, 2.0]) for k in range(5)])

    class A:
        pass
    a = A()
    a.log, a.output, a.title, a.workers, a.truth = str(log), str(tmp_path / "f.png"), None, 1, str(log)
    assert plot_main(a) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a truth file" in err[0] and "sim --truth" in err[0]
    assert not (tmp_path / "f.png").exists()
