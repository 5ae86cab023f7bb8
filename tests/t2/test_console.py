"""T2: the serial console as people use it, against the virtual board.

`packwatch cmd` (one-shot and the console), `mpremote soft-reset`, and bringing the firmware back
after mpremote left the board at the REPL. Expected replies are the firmware's (docs/protocol.md:
an unknown key is an `err`, `set` answers `key`/`val`); expected REPL behaviour is MicroPython's
(mpremote 1.29's transport waits for "soft reboot" and the raw REPL banner; a board's main.c
prints "MPY: soft reboot" and runs main.py only from the friendly REPL). Every wait is on a
condition with a generous timeout.
"""
import os
import pty
import select
import subprocess
import sys
import time

PACKWATCH = [sys.executable, "-m", "packwatch"]
MPREMOTE = [sys.executable, "-m", "mpremote"]


def pw_cmd(port, *args, timeout=120, **kw):
    return subprocess.run(PACKWATCH + ["cmd", "--port", port, "--timeout", "30", "--restart-timeout", "60", *args],
                          capture_output=True, text=True, timeout=timeout, **kw)


def frames(stdout):
    """The frames packwatch cmd --json printed, decoded as JSON lines."""
    import json
    return [json.loads(ln) for ln in stdout.splitlines() if ln.startswith("{")]


def wait_rep_after(c, what):
    """A report from the running firmware (the Client reads the port afresh)."""
    return c.until(lambda t, f: t == "rep", what=what)


def test_cmd_several_commands_rc_from_replies(board):
    c = board("demo")
    wait_rep_after(c, "telemetry")
    c.close()  # one host on the port at a time, as with a real board
    r = pw_cmd(c.vb.port, "--json", "set report_ms 2000", "save", "config")  # not a protection: no unlock
    assert r.returncode == 0, r.stderr
    got = frames(r.stdout)
    assert [(f["topic"], f.get("cmd")) for f in got] == [("ok", "set"), ("ok", "save"), ("cfg", None), ("ok", "config")]
    assert got[0]["key"] == "report_ms" and got[0]["val"] == 2000
    assert got[2]["report_ms"] == 2000  # the board's config now holds it
    assert isinstance(got[1]["writes"], int) and got[1]["writes"] >= 1
    # readable form: one line per reply
    r = pw_cmd(c.vb.port, "ping", "set nosuchkey 1", "ping")
    assert r.returncode == 1, (r.stdout, r.stderr)
    lines = r.stdout.splitlines()
    assert lines[0].startswith("ok  ping  ms=") and lines[1].startswith("err set  ")
    assert len(lines) == 2  # stops at the err: the last ping is not sent
    assert "not sent after the err: ping" in r.stderr
    r = pw_cmd(c.vb.port, "-k", "set nosuchkey 1", "ping")
    assert r.returncode == 1 and r.stdout.splitlines()[-1].startswith("ok  ping")


def test_cmd_no_board_and_no_reply_exit_codes(board, tmp_path):
    r = pw_cmd(str(tmp_path / "ttyNOPE"), "ping")
    assert r.returncode == 4 and "could not open" in r.stderr and "Traceback" not in r.stderr
    c = board("demo")
    wait_rep_after(c, "telemetry")
    c.ser.write(b"\x03")  # the REPL: nobody answers commands
    end = time.monotonic() + 60
    while b">>> " not in c.raw and time.monotonic() < end:
        c.read()
    c.close()
    r = subprocess.run(PACKWATCH + ["cmd", "--port", c.vb.port, "--timeout", "2", "ping"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 3, (r.stdout, r.stderr)
    assert "MicroPython REPL" in r.stderr and "restart" in r.stderr and "Traceback" not in r.stderr


def test_console_through_a_stdin_pipe(board):
    c = board("demo")
    wait_rep_after(c, "telemetry")
    c.close()
    r = pw_cmd(c.vb.port, "--json", input="ping\nrate 500\nbogus\nmem\n")
    assert r.returncode == 1, r.stderr  # `bogus` was refused
    got = [(f["topic"], f.get("cmd")) for f in frames(r.stdout) if f["topic"] in ("ok", "err")]
    assert got == [("ok", "info"), ("ok", "ping"), ("ok", "rate"), ("err", "bogus"), ("ok", "mem")]
    assert not [f for f in frames(r.stdout) if f["topic"] == "rep"]  # telemetry hidden by default


def _read_until(fd, marker, buf, timeout=60, start=0):
    end = time.monotonic() + timeout
    while marker not in buf[start:]:
        left = end - time.monotonic()
        assert left > 0, "no %r from the console; it printed:\n%s" % (marker, buf.decode("utf-8", "replace"))
        r, _, _ = select.select([fd], [], [], min(left, 0.5))
        if r:
            try:
                data = os.read(fd, 4096)
            except OSError:
                data = b""
            if not data:
                break
            buf += data
    return buf


def test_interactive_console_on_a_pty(board, tmp_path):
    c = board("demo")
    wait_rep_after(c, "telemetry")
    c.close()
    hist = tmp_path / "hist"
    m, s = pty.openpty()
    p = subprocess.Popen(PACKWATCH + ["cmd", "--port", c.vb.port, "--timeout", "30", "--history", str(hist)],
                         stdin=s, stdout=s, stderr=s, env=dict(os.environ, TERM="dumb"), close_fds=True)
    os.close(s)
    try:
        # type only at a prompt, as a person does (readline has the terminal in raw mode by then)
        buf = _read_until(m, b"ok  info", bytearray())  # the console says which board it is on
        buf = _read_until(m, b"pw> ", buf, start=buf.index(b"ok  info"))
        os.write(m, b"set report_ms 1500\r")
        buf = _read_until(m, b"ok  set  key=report_ms val=1500", buf)
        buf = _read_until(m, b"pw> ", buf, start=buf.index(b"ok  set"))
        os.write(m, b"set cell_ov_mv 99999\r")
        buf = _read_until(m, b"err set  ", buf)
        buf = _read_until(m, b"pw> ", buf, start=buf.index(b"err set"))
        os.write(m, b"\x04")  # Ctrl-D: leave
        end = time.monotonic() + 60
        while p.poll() is None and time.monotonic() < end:  # keep reading: a full pty would block it
            if select.select([m], [], [], 0.2)[0]:
                try:
                    buf += os.read(m, 65536)
                except OSError:
                    break
        assert p.wait(timeout=30) == 1, buf[-2000:]  # one reply was err
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(m)
    assert "set report_ms 1500" in hist.read_text()  # readline history kept


def _mpremote(port, *args):
    return subprocess.run(MPREMOTE + ["connect", port, *args], capture_output=True, text=True, timeout=120)


def test_mpremote_soft_reset_then_restart_resumes_telemetry(board):
    c = board("demo")
    wait_rep_after(c, "telemetry")
    c.close()
    r = _mpremote(c.vb.port, "soft-reset")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "could not enter raw repl" not in r.stdout + r.stderr
    assert c.vb.resets == ["power", "soft"]
    # as on a Pico, a soft reset from the raw REPL skips main.py: the board is at the REPL...
    r = _mpremote(c.vb.port, "resume", "exec", "import pwfw; print('fw', pwfw.VERSION)")
    assert r.returncode == 0 and "fw " in r.stdout, r.stdout + r.stderr
    # ...until `packwatch cmd restart` soft-resets it from the friendly REPL
    r = pw_cmd(c.vb.port, "restart")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "restarted:" in r.stdout and "reset soft" in r.stdout
    c2 = type(c)(c.vb)
    try:
        n = c2.until(lambda t, f: t == "rep", what="telemetry after restart")["seq"]
        c2.until(lambda t, f: t == "rep" and f["seq"] > n, what="more telemetry")
    finally:
        c2.close()


def test_resume_exec_stops_telemetry_and_restart_brings_it_back(board):
    c = board("demo")
    wait_rep_after(c, "telemetry")
    c.close()
    r = _mpremote(c.vb.port, "resume", "exec", "print(6 * 7)")
    assert r.returncode == 0 and "42" in r.stdout, r.stdout + r.stderr
    # the firmware is stopped: no report comes while the host listens (virtual time stands still)
    c2 = type(c)(c.vb)
    c2.ser.write(b"\r\n")
    end = time.monotonic() + 60
    while b">>> " not in c2.raw and time.monotonic() < end:
        c2.read()
    assert b">>> " in c2.raw and not c2.reports(), c2.raw[-300:]
    c2.close()
    r = pw_cmd(c.vb.port, "restart")
    assert r.returncode == 0, r.stdout + r.stderr
    c3 = type(c)(c.vb)
    try:
        hdr = c3.until(lambda t, f: t in ("hdr", "rep"), what="telemetry after restart")
        c3.until(lambda t, f: t == "rep", what="a report after restart")
    finally:
        c3.close()
    assert c.vb.resets[-1] == "soft" and c.vb.soft_reboots >= 1
    # restart is harmless on a running board: it saves, soft-resets, and telemetry goes on
    r = pw_cmd(c.vb.port, "restart")
    assert r.returncode == 0 and "ok  save" in r.stdout, r.stdout + r.stderr
    assert hdr is not None


def test_soft_reset_prints_what_a_board_prints(board):
    """Ctrl-D in the raw REPL: OK, "MPY: soft reboot", the raw REPL again (main.py not run);
    Ctrl-B, then Ctrl-D at the friendly REPL: main.py runs (a hdr with reset "soft")."""
    c = board("demo")
    wait_rep_after(c, "telemetry")

    def send_until(data, want):
        mark = len(c.raw)
        c.ser.write(data)
        end = time.monotonic() + 60
        while want not in c.raw[mark:] and time.monotonic() < end:
            c.read()
        return c.raw[mark:]

    assert b">>> " in send_until(b"\r\x03", b">>> ")
    assert b"raw REPL; CTRL-B to exit\r\n>" in send_until(b"\r\x01", b"raw REPL; CTRL-B to exit\r\n>")
    want = b"OK\r\nMPY: soft reboot\r\nraw REPL; CTRL-B to exit\r\n>"
    got = send_until(b"\x04", want)
    assert got.startswith(want), got
    assert c.vb.resets == ["power", "soft"]
    n = len(c.frames)
    mark = len(c.raw)
    assert b">>> " in send_until(b"\r\x02", b">>> ")
    assert not [t for t, f in c.frames[n:] if t == "hdr"]  # main.py did not run from the raw REPL
    c.ser.write(b"\x04")
    hdr = c.until(lambda t, f: t == "hdr", what="hdr after the soft reset")
    assert hdr["reset"] == "soft"
    assert b"MPY: soft reboot\r\n" in c.raw[mark:]
    # a host that leaves the board in the raw REPL: `packwatch cmd restart` gets the firmware back too
    c.until(lambda t, f: t == "rep", what="telemetry")
    assert b">>> " in send_until(b"\r\x03", b">>> ")
    assert b"raw REPL; CTRL-B" in send_until(b"\r\x01", b"raw REPL; CTRL-B to exit\r\n>")
    c.close()
    r = pw_cmd(c.vb.port, "restart")
    assert r.returncode == 0 and "restarted:" in r.stdout, r.stdout + r.stderr
    assert "ok  save" not in r.stdout  # the firmware was not running: nothing to save
