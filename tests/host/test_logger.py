"""Logger against a tiny fake device on a pty: decoded CSV, raw capture, counters, replug, kill safety."""
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from packwatch.logcsv import LogWriter, read_log, cell_columns
from packwatch.logger import Logger
from packwatch import ports
from tests.support import FakeDevice

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_logger(tmp_path, port, duration, **kw):
    lg = Logger(port, tmp_path, duration=duration, **kw)
    rc = lg.run()
    csvs = sorted(p for p in lg.files.created if p.endswith(".csv") and os.path.exists(p))
    raws = sorted(p for p in lg.files.created if p.endswith(".raw"))
    return lg, rc, csvs, raws


def test_log_decodes_counts_and_captures(tmp_path):
    dev = FakeDevice(n=40, extras={7: "badcrc", 12: "gap", 20: "noise"}).start()
    try:
        lg, rc, csvs, raws = run_logger(tmp_path, dev.port, duration=1.5)
    finally:
        dev.close()
    assert rc == 0 and len(csvs) == 1
    s = lg.session
    assert s.crc_errors == 1
    assert s.gaps == 1 + 3       # the dropped bad-CRC frame and the jump of 3
    assert s.reboots == 0
    assert b"info" in dev.commands  # asked for a hdr on connect
    log = read_log(csvs[0])
    assert log.n_cells == 4 and len(log) == len(dev.sent) == 39
    np.testing.assert_allclose(log.cells_v, np.array([f["cell_mv"] for f in dev.sent]) / 1000)
    np.testing.assert_allclose(log.current_a, [f["i_ma"] / 1000 for f in dev.sent])
    np.testing.assert_allclose(log.cols["seq"], [f["seq"] for f in dev.sent])
    assert np.isnan(log.temps_c[:, 1]).all() and log.temps_c[0, 0] == 25.0
    ms = np.array([f["ms"] for f in dev.sent])  # spacing from the device clock, not from arrival
    np.testing.assert_allclose(log.t_s - log.t_s[0], (ms - ms[0]) / 1000, atol=1e-6)
    assert log.meta["uid"] == "fake01" and log.meta["fmt"] == "1"
    raw = open(raws[0], "rb").read()
    assert raw.count(b"#rep {") == 40 and b"boot noise" in raw and b"!connect" in raw


def test_capture_reaches_disk_while_logging(tmp_path):
    """The raw capture is written out as lines arrive, not when the logger closes (a logger killed or
    unplugged mid-run keeps every line it received): with the logger still running, every report the
    device sent is in the .raw on disk, and at every look the CSV on disk has no row the capture lacks."""
    dev = FakeDevice(n=30).start()
    lg = Logger(dev.port, tmp_path, duration=60)
    th = threading.Thread(target=lg.run, daemon=True)
    th.start()
    try:
        end = time.monotonic() + 20  # a bound for a busy machine; a working logger takes ~0.5 s
        while True:
            files = list(lg.files.created)
            csv = [p for p in files if p.endswith(".csv") and os.path.exists(p)]
            raw = [p for p in files if p.endswith(".raw")]
            # the CSV first: the capture can only grow while we read it
            rows = sum(1 for ln in open(csv[0], "rb") if not ln.startswith(b"#")) - 1 if csv else 0
            reps = open(raw[0], "rb").read().count(b"#rep {") if raw else 0
            assert rows <= reps, "CSV rows (%d) ahead of the capture on disk (%d reports)" % (rows, reps)
            if dev.done.is_set() and reps == len(dev.sent):
                break
            assert time.monotonic() < end, ("capture on disk holds %d of the %d reports sent, logger still "
                                             "running" % (reps, len(dev.sent)))
            time.sleep(0.02)
        assert th.is_alive(), "the logger stopped before the check (duration 60 s)"
    finally:
        lg.stop = True
        th.join(10)
        dev.close()


def test_refuses_other_format(tmp_path):
    dev = FakeDevice(n=5, fmt=2).start()
    try:
        lg, rc, csvs, raws = run_logger(tmp_path, dev.port, duration=3)
    finally:
        dev.close()
    assert rc == 3 and "format 2" in lg.session.fmt_error


def test_reconnects_to_same_path_and_counts_reboot(tmp_path):
    """Unplug (the pty goes away, the path is re-pointed to a new pty) and the board reboots."""
    link = str(tmp_path / "ttyFAKE")
    dev1 = FakeDevice(n=15, boots=1).start()
    os.symlink(dev1.port, link)
    out = tmp_path / "out"
    result = {}
    th = threading.Thread(target=lambda: result.update(zip(("lg", "rc", "csvs", "raws"),
                                                            run_logger(out, link, duration=4.0))))
    th.start()
    dev1.done.wait(5)
    time.sleep(0.3)
    dev1.close()                      # unplug
    time.sleep(0.5)
    dev2 = FakeDevice(n=15, boots=2).start()   # replug, after a reboot: seq restarts
    os.unlink(link)
    os.symlink(dev2.port, link)
    th.join(10)
    dev2.close()
    lg = result["lg"]
    assert result["rc"] == 0 and lg.connects >= 2
    assert lg.session.reboots == 1 and lg.session.gaps == 0
    log = read_log(result["csvs"][0])
    assert len(log) == 30
    assert list(log.cols["seq"]) == list(range(15)) * 2


def test_writer_rows_are_whole_after_kill(tmp_path):
    """Kill -9 a process writing rows as fast as it can: the CSV reads back with only whole rows."""
    path = tmp_path / "k.csv"
    code = ("import sys; sys.path.insert(0, %r)\n"
            "from packwatch.logcsv import LogWriter\n"
            "w = LogWriter(%r, 16, 3, autoflush=True)\n"
            "i = 0\n"
            "while True:\n"
            "    w.write_row(i * 0.1, 1.5, [3.3] * 16, [25.0, None, 24.0], {'seq': i, 'alarm': 0})\n"
            "    i += 1\n" % (os.path.join(ROOT, "host"), str(path)))
    p = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.time() + 10
    while time.time() < deadline and (not path.exists() or path.stat().st_size < 200_000):
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL)
    p.wait()
    log = read_log(path)
    assert len(log) > 100
    assert not np.isnan(log.cells_v).any()
    np.testing.assert_array_equal(log.cols["seq"], np.arange(len(log)))
    assert path.read_bytes().endswith(b"\n")


def test_read_log_errors_and_unknown_columns(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("# fmt: 1\nt_s,current_a,cell01_v,cell02_v,mystery\n0,1,3.3,3.31,hello\n1,,3.2,3.21,x\n")
    log = read_log(p)
    assert log.n_cells == 2 and np.isnan(log.current_a[1]) and list(log.cols["mystery"]) == ["hello", "x"]
    p.write_text("t_s,cell01_v\n0,3.3\n")
    with pytest.raises(ValueError, match="current_a"):
        read_log(p)
    p.write_text("# fmt: 7\n# fw: 9.9\nt_s,current_a,cell01_v\n0,1,3.3\n")
    with pytest.raises(ValueError, match="fmt 7.*reads fmt 1"):
        read_log(p)
    assert cell_columns(["cell10_v", "cell02_v", "x", "cell01_v"]) == ["cell01_v", "cell02_v", "cell10_v"]


def test_read_log_blocks_equal_whole(tmp_path):
    p = tmp_path / "b.csv"
    with LogWriter(p, 3, 1) as w:
        for i in range(5000):
            w.write_row(i * 0.1, i / 7, [3.0 + i / 1e4, 3.1, 3.2], [20 + i % 5], {"host_utc": "2024-01-01T00:00:00Z", "seq": i})
    from packwatch.logcsv import iter_chunks
    parts = [c for _, _, c in iter_chunks(p, block=4096)]
    assert len(parts) > 10
    np.testing.assert_array_equal(np.concatenate([c["seq"] for c in parts]), np.arange(5000))
    size = p.stat().st_size
    halves = [c for a, b in ((0, size // 3), (size // 3, size)) for _, _, c in iter_chunks(p, start=a, end=b)]
    np.testing.assert_array_equal(np.concatenate([c["seq"] for c in halves]), np.arange(5000))


def test_ports_registry(tmp_path, monkeypatch):
    monkeypatch.setenv("PACKWATCH_RUNTIME_DIR", str(tmp_path))
    ports.register_vboard("/dev/pts/99", "vb1")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    ports.register_vboard("/dev/pts/98", "vb2", pid=dead.pid)
    (tmp_path / "vboards" / "junk.json").write_text("{not json")
    v = ports.virtual_ports()
    assert [(p["port"], p["serial"]) for p in v] == [("/dev/pts/99", "vb1")]
    assert ports.find_port("VB1") == "/dev/pts/99" or ports.usb_ports()
    ports.unregister_vboard("vb1")
    assert ports.virtual_ports() == []
