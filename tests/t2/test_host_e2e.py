"""T2: the host tools (`packwatch log/replay/plot/live/ports/sim/demo` and the Python API) end to end
against the virtual board: the real firmware on MicroPython behind a pty, as a host sees a real board.

The logger's output is checked against the raw capture decoded *here* (CRC and JSON checked by this
file, not by packwatch.protocol) and against the simulated pack's truth rows, so a decoder, row
builder or writer that drops, invents or garbles data fails. CLI commands run as subprocesses where
the process boundary matters (SIGKILL, `--port auto`, `sim`); the rest call the Python functions.
"""
import itertools
import json
import os
import random
import re
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from packwatch import logcsv
from packwatch.api import Board, CommandError, open_log
from packwatch.live import live
from packwatch.logger import Logger
from packwatch.replay import replay

ROOT = Path(__file__).resolve().parents[2]
_uids = itertools.count()
SUMMARY_RE = re.compile(r"samples (\d+), crc errors (\d+), malformed (\d+), oversize (\d+), gaps (\d+), "
                        r"reboots (\d+), connects (\d+)")
FRAME_RE = re.compile(rb"(#([a-z0-9_]{1,8}) (\{.*\})) ([0-9A-F]{8})\r?")


# --- fixtures and helpers ------------------------------------------------------------------------------
@pytest.fixture
def rt(tmp_path, monkeypatch):
    """A private port registry, so boards of other test sessions never show up in `ports`/`auto`."""
    d = tmp_path / "runtime"
    d.mkdir()
    monkeypatch.setenv("PACKWATCH_RUNTIME_DIR", str(d))
    return d


@pytest.fixture
def vboard(board, rt):
    """Start a virtual board (conftest's `board`) and hand its port to the host tool under test: the
    fixture's Client is closed so it does not compete for the port's bytes."""
    def start(scenario="demo", hold=False, **kw):
        kw.setdefault("serial", "T2H%05d%02d" % (os.getpid() % 100000, next(_uids)))
        c = board(scenario, hold=hold, **kw)  # hold: frozen at boot until the test lifts vb.hold_at_ms
        c.close()
        return c.vb
    return start


_procs = []


@pytest.fixture(autouse=True)
def _reap():
    """No CLI process outlives its test, whatever the test's outcome."""
    yield
    while _procs:
        p = _procs.pop()
        if p.poll() is None:
            p.kill()
        p.communicate()


def cli(*args, **kw):
    """Start `python -m packwatch ARGS` (stdout/stderr captured)."""
    p = subprocess.Popen([sys.executable, "-m", "packwatch", *map(str, args)], cwd=str(ROOT),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ), **kw)
    _procs.append(p)
    return p


def run_cli(*args, timeout=60):
    p = cli(*args)
    out, err = p.communicate(timeout=timeout)
    return p.returncode, out.decode(), err.decode()


def stop_cli(p, sig=signal.SIGTERM, timeout=20):
    p.send_signal(sig)
    out, err = p.communicate(timeout=timeout)
    return p.returncode, out.decode(), err.decode()


def summary(stderr):
    m = SUMMARY_RE.search(stderr)
    assert m, "no logger summary in stderr:\n" + stderr
    return dict(zip(("samples", "crc", "malformed", "oversize", "gaps", "reboots", "connects"),
                    map(int, m.groups())))


def files(out_dir, ext):
    return sorted(str(p) for p in Path(out_dir).glob("*." + ext))


def one_file(out_dir, ext):
    found = files(out_dir, ext)
    assert len(found) == 1, "expected one .%s in %s, found %s" % (ext, out_dir, found)
    return found[0]


def csv_rows(out_dir):
    n = 0
    for p in files(out_dir, "csv"):
        with open(p, "rb") as f:
            n += sum(1 for ln in f if ln[:1] not in (b"#", b"t", b"\n"))
    return n


def wait_for(pred, timeout, what, vb=None):
    end = time.monotonic() + timeout
    while not pred():
        if vb is not None and vb.error:
            raise RuntimeError("virtual board failed: %r" % vb.error)
        assert time.monotonic() < end, "timed out waiting for %s%s" % (
            what, "" if vb is None else " (virtual t=%d ms)" % vb.t_ms)
        time.sleep(0.05)


def decode_capture(path):
    """The raw capture decoded independently of packwatch.protocol: (frames, notes, batches) with
    frames = [(host_t, topic, fields)] for every line (or a frame glued after noise) whose CRC-32 and
    JSON check out, notes = [(host_t, text)] for the logger's '!' lines, and the set of host times of
    the file's write batches."""
    data = Path(path).read_bytes()
    assert data == b"" or data.endswith(b"\n"), "raw capture ends with half a line"
    frames, notes = [], []
    for ln in data.split(b"\n")[:-1]:
        stamp, sp, line = ln.partition(b" ")
        t = float(stamp)  # every line starts with its host time
        if line.startswith(b"!"):
            notes.append((t, line[1:].decode()))
            continue
        for k in [m.start() for m in re.finditer(rb"#", line)]:
            m = FRAME_RE.fullmatch(line[k:])
            if m and zlib.crc32(m.group(1)) == int(m.group(4), 16):
                try:
                    fields = json.loads(m.group(3))
                except ValueError:
                    continue
                if isinstance(fields, dict):
                    frames.append((t, m.group(2).decode(), fields))
                    break
    return frames, notes


def reps_of(frames):
    return [f for _, topic, f in frames if topic == "rep"]


def _arr(values, scale):
    return np.array([np.nan if v is None else v / scale for v in values], dtype=float)


def assert_log_equals_reps(log, reps):
    """Every CSV row is the rep frame at the same position, field for field, in the schema's units."""
    assert len(log) == len(reps), "CSV has %d rows, the capture %d valid rep frames" % (len(log), len(reps))
    c = log.cols
    np.testing.assert_array_equal(c["seq"], [r["seq"] for r in reps])
    np.testing.assert_array_equal(c["dev_ms"], [r["ms"] for r in reps])
    np.testing.assert_allclose(log.current_a, _arr([r["i_ma"] for r in reps], 1000.0), atol=5e-4)
    cells = np.array([_arr(r["cell_mv"], 1000.0) for r in reps])
    np.testing.assert_allclose(log.cells_v, cells, atol=5e-4)
    temps = np.array([_arr(r["t_dc"], 10.0) for r in reps])
    np.testing.assert_allclose(log.temps_c, temps, atol=0.05)
    np.testing.assert_allclose(c["stack_v"], _arr([r["stack_mv"] for r in reps], 1000.0), atol=5e-4)
    np.testing.assert_allclose(c["soc_pct"], _arr([r["soc_pm"] for r in reps], 10.0), atol=0.05)
    np.testing.assert_allclose(c["soc_sigma_pct"], _arr([r["sig_pm"] for r in reps], 10.0), atol=0.05)
    np.testing.assert_array_equal(c["alarm"], [r["alarm"] for r in reps])
    np.testing.assert_array_equal(c["fault"], [r["fault"] for r in reps])
    np.testing.assert_array_equal(c["fet"], [r["fet"] for r in reps])


def seq_gaps(frames):
    """Lost lines by the protocol's rule: seq (shared by rep/cell/evt) steps by one within a boot and
    goes back at a reboot."""
    lost, prev = 0, None
    for _, topic, f in frames:
        if topic in ("rep", "cell", "evt") and isinstance(f.get("seq"), int):
            if prev is not None and f["seq"] > prev:
                lost += f["seq"] - prev - 1
            prev = f["seq"]
    return lost


def seq_runs(frames):
    """The seq numbers of the capture's rep/cell/evt lines, split where seq goes back (a reboot)."""
    runs = []
    for _, topic, f in frames:
        if topic in ("rep", "cell", "evt") and isinstance(f.get("seq"), int):
            if not runs or f["seq"] <= runs[-1][-1]:
                runs.append([])
            runs[-1].append(f["seq"])
    return runs


def assert_no_lost_line(frames):
    for run in seq_runs(frames):
        assert run == list(range(run[0], run[0] + len(run))), "lines lost: seq %s" % [
            (a, b) for a, b in zip(run, run[1:]) if b != a + 1]


class ThreadLogger:
    """packwatch.logger.Logger on a thread (for tests that read its counters)."""

    def __init__(self, port, out_dir, **kw):
        kw.setdefault("daily", False)
        self.lg = Logger(port, str(out_dir), **kw)
        self.rc = None
        self.th = threading.Thread(target=self._run, daemon=True)
        self.th.start()

    def _run(self):
        self.rc = self.lg.run()

    @property
    def samples(self):
        return self.lg.session.samples if self.lg.session else 0

    def drain_and_stop(self, vb, quiet_s=0.4):
        """Freeze the board, wait until the logger has read everything, stop it."""
        vb.hold_at_ms = vb.t_ms
        wait_for(lambda: vb.held, 20, "the board to stand still", vb)  # it has sent its last line
        n, t = -1, time.monotonic()
        while n != self.samples or time.monotonic() - t < quiet_s:
            if n != self.samples:
                n, t = self.samples, time.monotonic()
            time.sleep(0.05)
        self.lg.stop = True
        self.th.join(timeout=10)
        assert not self.th.is_alive(), "logger did not stop"
        return self.rc


def drain_cli(vb, p, out_dir, quiet_s=0.5):
    vb.hold_at_ms = vb.t_ms
    wait_for(lambda: vb.held, 20, "the board to stand still", vb)  # it has sent its last line
    n, t = -1, time.monotonic()
    while n != csv_rows(out_dir) or time.monotonic() - t < quiet_s:
        if n != csv_rows(out_dir):
            n, t = csv_rows(out_dir), time.monotonic()
        time.sleep(0.05)
    return stop_cli(p)


# --- 1. log through the pty path ----------------------------------------------------------------------------
def test_log_cli_csv_schema_equals_frames_and_truth(vboard, tmp_path):
    """`packwatch log --port <pty>`: the CSV has the schema's columns and metadata, one row per rep
    frame the firmware sent (checked against the capture, decoded here), t_s spaced by the device
    clock, and values within sensor tolerance of the simulated pack; the Python API reads it."""
    vb = vboard("demo", hold=True, truth_every_ms=100)  # every step's truth: paired by the firmware's clock
    out = tmp_path / "log"
    p = cli("log", "--port", vb.port, "--out", out, "--no-daily")
    wait_for(lambda: b"!connect" in b"".join(Path(f).read_bytes() for f in files(out, "raw")), 30, "connect")
    vb.hold_at_ms = None  # from the first report on, everything the firmware sends reaches the logger
    wait_for(lambda: vb.t_ms >= 180_000 or p.poll() is not None, 60, "3 virtual minutes", vb)
    rc, _, err = drain_cli(vb, p, out)
    assert rc == 0, err
    s = summary(err)

    log = logcsv.read_log(one_file(out, "csv"))
    frames, notes = decode_capture(one_file(out, "raw"))
    reps = reps_of(frames)
    n_cells, n_temps = len(reps[0]["cell_mv"]), len(reps[0]["t_dc"])
    assert n_cells == vb.board["cells"] == 16
    assert log.names == logcsv.header_columns(n_cells, n_temps), log.names
    assert log.names[:4] == ["t_s", "current_a", "cell01_v", "cell02_v"] and "cell16_v" in log.names
    for col in ("temp1_c", "host_utc", "dev_ms", "seq", "stack_v", "soc_pct", "soc_sigma_pct", "alarm", "fault", "fet"):
        assert col in log.names
    assert log.meta["uid"] == vb.serial and log.meta["fmt"] == "1" and log.meta["log_format"] == "1"
    assert log.meta["fw"] and log.meta["chem"] == "lfp"
    assert notes and notes[0][1].startswith("connect ")

    # every valid frame received became a row, nothing else did; counters agree with the capture
    assert len(reps) >= 175, "only %d reports in 3 virtual minutes" % len(reps)
    assert_log_equals_reps(log, reps)
    # rep, cell and evt share one sequence: the boot's first numbered frame (an AFE event may come first)
    numbered = [(topic, f["seq"]) for _, topic, f in frames if "seq" in f]
    k = [topic for topic, _ in numbered].index("rep")
    assert [q for _, q in numbered[:k + 1]] == list(range(k + 1)), "the first report of the boot is missing"
    seqs = sorted(f["seq"] for _, t, f in frames if t in ("rep", "cell", "evt"))
    assert seqs == list(range(len(seqs))), "a line the firmware sent is missing from the capture"
    assert s["samples"] == len(reps) and s["crc"] == 0 and s["gaps"] == 0 and s["reboots"] == 0
    # t_s: seconds since the file started, spaced by the device's clock (not by host batches)
    assert log.t_s[0] == 0.0
    np.testing.assert_allclose(np.diff(log.t_s), np.diff(log.cols["dev_ms"]) / 1000.0, atol=1.5e-3)

    # the simulated pack: the truth of the step each report was sampled in (by the firmware's clock; one boot)
    truth = [r for r in vb.truth if r[0] > 0]  # the row at plant time 0 is the state before any step
    tt = np.array([r[7] for r in truth], dtype=float)
    k = np.abs(tt[None, :] - log.cols["dev_ms"][:, None]).argmin(axis=1)
    assert np.abs(tt[k] - log.cols["dev_ms"]).max() <= 100  # within one sample period (boot steps are 1 ms)
    ti = np.array([r[1] for r in truth]) / 1000.0
    tc = np.array([r[3] for r in truth]) / 10000.0
    tT = np.array([r[4] for r in truth]) / 10.0
    # from the second report: the first is sampled as the power path closes (the plant obeys the AFE's
    # FETs, which the firmware hands over in that sample), and the rows within a sample of it straddle that
    k, cur, cells_v, temps_c = k[1:], log.current_a[1:], log.cells_v[1:], log.temps_c[1:]
    assert np.all(np.abs(cur - ti[k]) <= 0.1 + 0.01 * np.abs(ti[k])), "current far from the pack's"
    assert np.abs(log.current_a).max() > 10, "the demo scenario discharges from the start"
    assert np.all(np.abs(cells_v - tc[k]) <= 0.010), "cell voltages far from the pack's"
    assert np.all(np.abs(temps_c - tT[k][:, :n_temps]) <= 1.0), "temperatures far from the pack's"
    np.testing.assert_allclose(log.cols["stack_v"][1:], tc[k].sum(axis=1), atol=0.1)

    # Python API: the same log as arrays and as a DataFrame
    api = open_log(one_file(out, "csv"))
    assert api.cells_v.shape == (len(reps), 16) and api.temps_c.shape == (len(reps), n_temps)
    pd = pytest.importorskip("pandas")
    df = api.to_pandas()
    assert isinstance(df, pd.DataFrame) and list(df.columns) == log.names and len(df) == len(reps)
    np.testing.assert_array_equal(df["seq"].to_numpy(), log.cols["seq"])


# --- 2. unplug / replug ----------------------------------------------------------------------------------------
def test_log_auto_follows_serial_across_unplug_replug(vboard, tmp_path):
    """`packwatch log --port auto --serial SN`: the cable comes out (the pty disappears, the board
    keeps running), goes back in as a new pty; the logger notes the disconnect, reconnects to the same
    board, reports the lost span as a seq gap and keeps the device's time across it (no invented rows)."""
    vb = vboard("demo")
    other = vboard("demo", seed=2)  # a second board: `auto` must pick the one with our serial
    out = tmp_path / "log"
    p = cli("log", "--port", "auto", "--serial", vb.serial, "--out", out, "--no-daily")
    wait_for(lambda: csv_rows(out) >= 20, 30, "rows before the unplug", vb)
    vb.unplug()
    t_unplug = vb.t_ms
    wait_for(lambda: vb.t_ms >= t_unplug + 60_000, 30, "a virtual minute unplugged", vb)
    vb.replug()
    n_before = csv_rows(out)
    wait_for(lambda: csv_rows(out) >= n_before + 20, 30, "rows after the replug", vb)
    rc, _, err = drain_cli(vb, p, out)
    assert rc == 0, err
    s = summary(err)

    frames, notes = decode_capture(one_file(out, "raw"))
    log = logcsv.read_log(one_file(out, "csv"))
    reps = reps_of(frames)
    assert_log_equals_reps(log, reps)
    assert all(f.get("uid") in (None, vb.serial) for _, t, f in frames if t in ("hdr", "ok"))
    assert other.serial not in Path(one_file(out, "raw")).read_text()

    kinds = [n.split(" ")[0].rstrip(":") for _, n in notes]
    assert kinds[0] == "connect" and "disconnect" in kinds
    i = kinds.index("disconnect")
    assert "connect" in kinds[i:], "no reconnect noted after the disconnect: %s" % notes
    assert [n for _, n in notes if n.startswith("connect ")][-1] == "connect " + vb.port
    assert s["connects"] == 2 and s["reboots"] == 0

    # the board kept running: seq (shared by rep/cell/evt lines) jumps once, over the unplugged span
    seq_all = np.array([f["seq"] for _, t, f in frames if t in ("rep", "cell", "evt")])
    jumps = np.flatnonzero(np.diff(seq_all) != 1)
    assert len(jumps) == 1, "seq should jump exactly once (at the unplug): %s" % seq_all[jumps]
    before, after = seq_all[jumps[0]], seq_all[jumps[0] + 1]
    assert after > before + 50
    assert s["gaps"] == seq_gaps(frames) == after - before - 1
    seq, ms = log.cols["seq"], log.cols["dev_ms"]
    j = np.flatnonzero(seq <= before)[-1]
    assert seq[j + 1] >= after, "a row was invented inside the unplugged span"
    assert ms[j + 1] - ms[j] >= 60_000
    assert np.all(np.diff(log.t_s) > 0)
    np.testing.assert_allclose(log.t_s[j + 1] - log.t_s[j], (ms[j + 1] - ms[j]) / 1000.0, atol=2e-3)


# --- 3. device reboot ---------------------------------------------------------------------------------------------
def test_log_counts_power_cut_and_reboot_command(vboard, tmp_path):
    """A power cut (vb.restart) and the `reboot` command: the logger counts two reboots, keeps
    logging into the same file with t_s never going back, and the CSV still equals the capture."""
    vb = vboard("demo")
    out = tmp_path / "log"
    tl = ThreadLogger(vb.port, out)
    wait_for(lambda: tl.samples >= 30, 30, "reports before the power cut", vb)
    vb.restart("power")
    # the logger may still be reading the old boot's lines from the pipes: count from the new boot
    wait_for(lambda: tl.lg.session.reboots >= 1, 30, "the logger to see the power cut", vb)
    n = tl.samples
    wait_for(lambda: tl.samples >= n + 30, 30, "reports after the power cut", vb)
    vb.inject_serial(b"\nreboot\n", to="device")  # as if typed on the port: the firmware reboots itself
    wait_for(lambda: len(vb.resets) >= 3, 20, "the firmware to restart on `reboot`", vb)
    wait_for(lambda: tl.lg.session.reboots >= 2, 30, "the logger to see the reboot", vb)
    n = tl.samples
    wait_for(lambda: tl.samples >= n + 30, 30, "reports after the reboot command", vb)
    assert tl.drain_and_stop(vb) == 0
    assert vb.resets == ["power", "power", "soft"]

    sess = tl.lg.session
    assert sess.reboots == 2, tl.lg.summary()
    assert sess.gaps == 0 and sess.crc_errors == 0
    frames, _ = decode_capture(one_file(out, "raw"))
    log = logcsv.read_log(one_file(out, "csv"))
    assert_log_equals_reps(log, reps_of(frames))
    seq = log.cols["seq"]
    restarts = np.flatnonzero(np.diff(seq) < 0)
    assert len(restarts) == 2 and np.all(seq[restarts + 1] <= 5), "seq should restart twice: %s %s" % (restarts, [list(seq[max(0, k - 3):k + 4]) for k in restarts])
    runs = seq_runs(frames)
    assert len(runs) == 3 and runs[1][0] == runs[2][0] == 0, [r[:3] for r in runs]
    assert_no_lost_line(frames)
    assert np.all(np.diff(log.t_s) > 0), "log time went back at a reboot"
    assert log.meta["uid"] == vb.serial


# --- 4. SIGKILL mid-write ----------------------------------------------------------------------------------------
def test_log_killed_mid_run_leaves_whole_files(vboard, tmp_path):
    """SIGKILL the `packwatch log` process at random instants while data flows: both files are
    readable, hold only whole lines, and the CSV holds a row for every valid rep frame of the capture
    except at most the final write batch (the capture is written first); within what was captured no
    frame is missing."""
    vb = vboard("demo")
    rnd = random.Random(6)
    for run in range(3):
        out = tmp_path / ("kill%d" % run)
        p = cli("log", "--port", vb.port, "--out", out, "--no-daily", "-q")
        wait_for(lambda: csv_rows(out) >= 20, 30, "rows before the kill", vb)
        time.sleep(rnd.uniform(0.0, 0.5))
        p.send_signal(signal.SIGKILL)
        p.communicate(timeout=10)
        assert p.returncode == -signal.SIGKILL

        csv_path, raw_path = one_file(out, "csv"), one_file(out, "raw")
        text = Path(csv_path).read_bytes()
        assert text.endswith(b"\n"), "CSV ends with half a row"
        header = [ln for ln in text.split(b"\n") if ln and not ln.startswith(b"#")][0]
        width = header.count(b",")
        body = [ln for ln in text.split(b"\n")[:-1] if ln and not ln.startswith(b"#")][1:]
        assert all(ln.count(b",") == width for ln in body), "a torn row in the CSV"

        log = logcsv.read_log(csv_path)
        frames, _ = decode_capture(raw_path)
        times = [t for t, topic, _ in frames if topic == "rep"]
        reps = reps_of(frames)
        assert len(log) >= 20
        unflushed = len(reps) - len(log)
        assert 0 <= unflushed <= times.count(times[-1]), (
            "CSV %d rows vs capture %d reports: more missing than the last write batch" % (len(log), len(reps)))
        assert_log_equals_reps(log, reps[:len(log)])
        assert_no_lost_line(frames)  # nothing lost before the kill
    assert vb.error is None


# --- 5. garbage on the line ---------------------------------------------------------------------------------------
def test_log_counts_garbage_and_loses_no_frame(vboard, tmp_path):
    """Noise, bad-CRC frames, malformed frames, an over-long line and noise glued in front of the
    next frame, injected between the firmware's lines: each is counted by kind, no valid frame is lost
    (seq has no gap), the garbage is kept in the capture, and replay reaches the same counts."""
    vb = vboard("demo")
    out = tmp_path / "log"
    tl = ThreadLogger(vb.port, out)
    wait_for(lambda: tl.samples >= 10, 30, "first reports", vb)
    rnd = random.Random(5)
    body = b'#rep {"seq":1,"ms":2,"cell_mv":[3300],"i_ma":0}'
    bad_crc = body + b" %08X\n" % (zlib.crc32(body) ^ 0x10)
    bad_json = b'#rep {"seq":1,"ms":2,' + b" %08X\n" % zlib.crc32(b'#rep {"seq":1,"ms":2,')
    n_crc = n_mal = 0
    for rnd_i in range(4):
        t = vb.t_ms + 20_000
        wait_for(lambda: vb.t_ms >= t, 20, "time to pass", vb)
        vb.hold_at_ms = vb.t_ms  # the firmware is between two lines: the junk cannot split a frame
        wait_for(lambda: vb.held, 20, "the board to stand still", vb)  # (not a wall-clock sleep)
        noise = bytes(rnd.randrange(256) for _ in range(200)).replace(b"\n", b"").replace(b"#", b"")
        vb.inject_serial(b"\n" + noise + b"\n", to="host")
        vb.inject_serial(bad_crc + bad_json, to="host")
        n_crc += 1
        n_mal += 1
        if rnd_i == 1:
            vb.inject_serial(b"x" * 3000 + b"\n", to="host")  # over-long line
        if rnd_i == 2:
            vb.inject_serial(b"\x00\xffno newline here ", to="host")  # glued in front of the next frame
        vb.hold_at_ms = None
    t = vb.t_ms + 20_000
    wait_for(lambda: vb.t_ms >= t, 20, "time to pass", vb)
    assert tl.drain_and_stop(vb) == 0

    sess = tl.lg.session
    assert sess.dec.crc_errors == n_crc, tl.lg.summary()
    assert sess.dec.malformed == n_mal, tl.lg.summary()
    assert sess.dec.oversize >= 1 and sess.dec.noise >= 4
    assert sess.gaps == 0 and sess.reboots == 0
    log = logcsv.read_log(one_file(out, "csv"))
    assert len(log) >= 100
    raw = Path(one_file(out, "raw")).read_bytes()
    assert raw.count(bad_crc) == n_crc and b"no newline here #" in raw
    frames, _ = decode_capture(one_file(out, "raw"))
    assert_log_equals_reps(log, reps_of(frames))
    assert_no_lost_line(frames)

    again = replay(one_file(out, "raw"), str(tmp_path / "again.csv"))
    assert (again.dec.crc_errors, again.dec.malformed, again.samples, again.gaps) == (
        n_crc, n_mal, len(log), 0)


# --- 6. replay -----------------------------------------------------------------------------------------------------
def test_replay_cli_reproduces_logged_csv(vboard, tmp_path):
    """`packwatch replay CAPTURE -o LOG.csv` over a capture with a reboot and noise in it reproduces
    the logger's CSV row for row (same text, same metadata apart from its source)."""
    vb = vboard("demo")
    out = tmp_path / "log"
    tl = ThreadLogger(vb.port, out)
    wait_for(lambda: tl.samples >= 40, 30, "reports", vb)
    vb.inject_serial(b"\x00\x01 noise\n", to="host")
    vb.restart("power")
    n = tl.samples
    wait_for(lambda: tl.samples >= n + 40, 30, "reports after the restart", vb)
    assert tl.drain_and_stop(vb) == 0
    csv_path, raw_path = one_file(out, "csv"), one_file(out, "raw")

    again = tmp_path / "again.csv"
    rc, _, err = run_cli("replay", raw_path, "-o", again)
    assert rc == 0, err
    assert "%d samples" % tl.samples in err and "1 reboots" in err

    def rows(p):
        lines = Path(p).read_text().splitlines()
        return [ln for ln in lines if not ln.startswith("#")]

    def meta(p):
        return {k: v for k, v in logcsv.read_log(p).meta.items() if k != "source"}
    live_rows, replay_rows = rows(csv_path), rows(again)
    assert len(live_rows) == tl.samples + 1
    assert replay_rows == live_rows
    assert meta(again) == meta(csv_path)


# --- 7. plot, ports, sim, live, demo, API ---------------------------------------------------------------------
def _png_size(path):
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    w, h = struct.unpack(">II", data[16:24])
    assert data.rstrip(b"\x00")[-8:-4] == b"IEND", "PNG is truncated"
    return w, h, len(data)


def test_plot_cli_of_logged_csv(vboard, tmp_path):
    """`packwatch plot LOG.csv -o FIG.png` on a log of the board: a complete PNG of figure size."""
    vb = vboard("demo")
    out = tmp_path / "log"
    tl = ThreadLogger(vb.port, out)
    wait_for(lambda: vb.t_ms >= 300_000, 30, "5 virtual minutes", vb)
    assert tl.drain_and_stop(vb) == 0
    png = tmp_path / "fig.png"
    rc, stdout, err = run_cli("plot", one_file(out, "csv"), "-o", png)
    assert rc == 0, err
    assert stdout.strip() == str(png)
    w, h, size = _png_size(png)
    assert w >= 1000 and 600 <= h <= 2000 and size > 30_000, (w, h, size)
    # a log without rows is refused, not drawn
    empty = tmp_path / "empty.csv"
    logcsv.LogWriter(empty, 16, 0).close()
    rc, _, err = run_cli("plot", empty, "-o", tmp_path / "no.png")
    assert rc == 2 and "no data rows" in err and not (tmp_path / "no.png").exists()


def test_ports_lists_virtual_board_and_forgets_it_unplugged(vboard, tmp_path):
    """`packwatch ports` lists the running virtual board with its port and serial number; unplugged,
    it is gone."""
    vb = vboard("demo")
    rc, stdout, err = run_cli("ports")
    assert rc == 0, err
    lines = [ln.split() for ln in stdout.splitlines()]
    assert lines[0][:3] == ["PORT", "VID:PID", "SERIAL"]
    assert [vb.port, "virtual", vb.serial] in [ln[:3] for ln in lines[1:]], stdout
    rc, stdout, _ = run_cli("ports", "--json")
    entries = json.loads(stdout)
    assert {"port": vb.port, "serial": vb.serial, "kind": "virtual"}.items() <= next(
        e for e in entries if e["serial"] == vb.serial).items()
    vb.unplug()
    rc, stdout, _ = run_cli("ports", "--json")
    assert vb.serial not in [e["serial"] for e in json.loads(stdout)]


def test_sim_cli_prints_port_and_link_logs(rt, tmp_path):
    """`packwatch sim --link PATH --duration S` prints the pty it serves, PATH points at it, it is
    registered for `ports`, and `packwatch log --port PATH` records the board through the link."""
    link = tmp_path / "board"
    truth = tmp_path / "truth.csv"
    sim = cli("sim", "--scenario", "demo", "--seed", "7", "--speed", "0", "--link", link,
              "--fs", tmp_path / "fs", "--duration", "30", "--truth", truth)
    try:
        printed = sim.stdout.readline().decode().strip()
        assert printed in (str(link), os.path.realpath(link)), "sim printed %r" % printed
        assert link.is_symlink()
        port = os.path.realpath(link)
        assert re.fullmatch(r"/dev/pts/\d+", port), port
        rc, stdout, _ = run_cli("ports", "--json")
        assert {"port": port, "serial": "VB00000007"}.items() <= json.loads(stdout)[0].items()

        out = tmp_path / "log"
        rc, _, err = run_cli("log", "--port", link, "--out", out, "--duration", "3", "--no-daily")
        assert rc == 0, err
        s = summary(err)
        log = logcsv.read_log(one_file(out, "csv"))
        assert s["samples"] == len(log) >= 20 and s["crc"] == 0 and s["gaps"] == 0
        assert log.meta["uid"] == "VB00000007"
        frames, _ = decode_capture(one_file(out, "raw"))
        assert_log_equals_reps(log, reps_of(frames))
        assert_no_lost_line(frames)
        assert not truth.exists()  # written beside it until sim stops: never half a file under its name
    finally:
        rc, _, err = stop_cli(sim)
    assert rc == 0, err
    assert not link.is_symlink(), "sim left its link behind"
    # the plant's truth (SIGTERM completed it): the log schema, and every logged report has its row
    tr = logcsv.read_log(truth)
    assert tr.n_cells == log.n_cells == 16 and len(tr.temp_names) == 7 and tr.meta["uid"] == "VB00000007"
    assert len(tr) > len(log) and not list(tmp_path.glob(".truth.*"))
    assert set(np.unique(tr.cols["boot"])) == {1}
    for k, ms in enumerate(log.cols["dev_ms"]):
        j = int(np.argmin(np.abs(tr.cols["dev_ms"] - ms)))  # one boot: the row nearest the report's clock
        assert abs(tr.cols["dev_ms"][j] - ms) <= 100  # at most one 100 ms sample step apart
        if abs(tr.current_a[max(0, j - 1)] - tr.current_a[min(len(tr) - 1, j + 1)]) > 0.5:
            continue  # a load step around that row: the report's sample and the row differ in time
        assert np.all(np.abs(log.cells_v[k] - tr.cells_v[j]) <= 0.006)  # the AFE's noise + 1 mV steps
        assert abs(log.cols["current_a"][k] - tr.current_a[j]) <= 0.02 + abs(tr.current_a[j]) / 200
        cell_soc = np.array([tr.cols["cell%02d_soc_pct" % (c + 1)][j] for c in range(16)])
        assert 0 < cell_soc.min() and cell_soc.max() < 100 and 0 < tr.cols["soc_pct"][j] < 100
    assert set(np.unique(tr.cols["fet"])) == {3}  # the demo's power path stays closed


def test_live_shows_cell_values(vboard, tmp_path):
    """`packwatch live --once` prints every cell of the board's report with its value (within sensor
    tolerance of the simulated pack at the shown device time); `--duration` with stdout not a terminal
    prints successive plain screens and exits 0."""
    vb = vboard("demo", truth_every_ms=1000)
    rc, stdout, err = run_cli("live", "--port", vb.port, "--once", "--timeout", "20")
    assert rc == 0, err
    cells = [float(v) for v in re.findall(r"^cell\d\d\s+([\d.]+) V", stdout, re.M)]
    assert len(cells) == 16, stdout
    assert "uid %s" % vb.serial in stdout and "SoC" in stdout and "\x1b" not in stdout
    ms = int(re.search(r"^seq \d+\s+ms (\d+)", stdout, re.M).group(1))
    truth = min(vb.truth, key=lambda r: abs(r[0] - ms))
    assert abs(truth[0] - ms) <= 1000
    np.testing.assert_allclose(cells, np.array(truth[3]) / 10000.0, atol=0.010)
    pack = re.search(r"^pack\s+([\d.]+) V\s+([+-][\d.]+) A", stdout, re.M)
    assert abs(float(pack.group(1)) - sum(cells)) < 0.1 and float(pack.group(2)) < -10
    assert "power path: closed (charge, discharge)" in stdout.splitlines()  # a load flows: the relay is on

    rc, stdout, err = run_cli("live", "--port", vb.port, "--duration", "2")
    assert rc == 0, err
    assert "\x1b" not in stdout
    seqs = [int(s) for s in re.findall(r"^seq (\d+)", stdout, re.M)]
    assert len(seqs) >= 5 and seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert stdout.count("cell16") == len(seqs)


def test_api_board_commands_and_reports(vboard):
    """packwatch.api.Board on the virtual board: commands answer, `rate` changes the report period,
    an `#err` raises CommandError, reports come as decoded dicts in seq order."""
    vb = vboard("demo")
    with Board(vb.port, timeout=20) as b:
        info = b.command("info")
        assert info["uid"] == vb.serial and info["fmt"] == 1 and info["cells"] == 16
        assert b.command("rate 250")["rate_ms"] == 250
        with pytest.raises(CommandError):
            b.command("rate 5")
        reps, seqs = [], []
        while len(reps) < 12:
            topic, f = b.next()
            if topic == "rep":
                reps.append(f)
            if topic in ("rep", "cell", "evt"):
                seqs.append(f["seq"])
        ms = np.array([r["ms"] for r in reps[-9:]])
        # the firmware schedules on its 100 ms loop tick: 250 ms comes as 200/300 ms, 250 on average
        assert abs(np.diff(ms).mean() - 250) <= 15 and np.all(np.abs(np.diff(ms) - 250) <= 60), ms
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        assert b.decoder.crc_errors == 0


def test_demo_cli_short_run(rt, tmp_path):
    """`packwatch demo --hours H`: logs every report of H virtual hours and plots them."""
    out = tmp_path / "demo"
    rc, stdout, err = run_cli("demo", "--out", out, "--hours", "0.05", timeout=90)
    assert rc == 0, err
    csv_path = re.search(r"^CSV: (.+)$", stdout, re.M).group(1)
    png = re.search(r"^PNG: (.+)$", stdout, re.M).group(1)
    log = logcsv.read_log(csv_path)
    assert 0.05 * 3600 - 10 <= len(log) <= 0.05 * 3600 * 1.3, len(log)  # it stops soon after H hours
    assert log.cols["dev_ms"][-1] >= 0.05 * 3600e3 - 1000
    frames, _ = decode_capture(one_file(out, "raw"))
    assert_log_equals_reps(log, reps_of(frames))
    assert_no_lost_line(frames)
    assert _png_size(png)[2] > 30_000
