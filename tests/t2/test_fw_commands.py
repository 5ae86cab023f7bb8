"""T2: commands and bad input through the virtual board's serial port (docs/protocol.md)."""
import subprocess
import sys
import time

from packwatch.vboard.board import SIM_QSTR_K


def test_boot_header_and_reports(board):
    c = board("demo")
    hdr = c.until(lambda t, f: t == "hdr", what="boot header")
    assert hdr["fmt"] == 1 and hdr["cells"] == 16 and hdr["chem"] == "lfp"
    assert hdr["reset"] == "power" and hdr["uid"] == c.vb.serial
    reps = []
    c.until(lambda t, f: t == "rep" and (reps.append(f) or len(reps) >= 5))
    assert [r["seq"] for r in reps] == sorted(r["seq"] for r in reps)
    assert all(len(r["cell_mv"]) == 16 and len(r["t_dc"]) == 5 for r in reps)
    gaps = {b["ms"] - a["ms"] for a, b in zip(reps, reps[1:])}
    assert gaps == {1000}  # the report period, scheduled without drift


def test_every_command_answers(board):
    c = board("demo")
    c.until(lambda t, f: t == "rep")
    t, f = c.cmd("ping")
    assert t == "ok" and isinstance(f["ms"], int)
    t, f = c.cmd("info")
    assert t == "ok" and f["fw"] and f["fmt"] == 1
    c.ser.write(b"config\n")
    cfg = c.until(lambda t, f: t == "cfg", what="cfg line")
    assert cfg["cell_ov_mv"] == 3650 and cfg["cell_uv_mv"] == 2500
    t, f = c.unlocked("set cell_ov_mv 3600")  # a protection setting: unlock first
    assert t == "ok" and f["key"] == "cell_ov_mv" and f["val"] == 3600
    c.ser.write(b"config\n")
    assert c.until(lambda t, f: t == "cfg")["cell_ov_mv"] == 3600
    t, f = c.cmd("rate 500")
    assert t == "ok" and f["rate_ms"] == 500
    n0 = len(c.frames)
    c.until(lambda t, f: t == "rep" and len(c.reports(n0)) >= 4)
    r = c.reports(n0)
    assert r[-1]["ms"] - r[-2]["ms"] == 500
    t, f = c.cmd("soc 420")
    assert t == "ok" and abs(f["soc_pm"] - 420) <= 2
    t, f = c.cmd("save")
    assert t == "ok" and f["writes"] >= 1
    t, f = c.cmd("clear")
    assert t == "ok" and f["alarm"] == 0
    t, f = c.cmd("mem")
    # the firmware's 96 KB, plus the qstr pool the simulated chips' names add to the shared table (the
    # firmware's own budget is T1's: tests/t1/test_app_mp.py)
    assert t == "ok" and 0 < f["alloc"] < (96 + SIM_QSTR_K) * 1024 and f["free"] > 0
    t, f = c.cmd("zero")  # the demo pack is under load: refusing is the right answer
    assert t == "err" and "rest" in f["error"]


def test_bad_input_gets_errors_and_changes_nothing(board):
    c = board("demo")
    c.until(lambda t, f: t == "rep")
    c.ser.write(b"config\n")
    before = c.until(lambda t, f: t == "cfg")
    bad = [
        ("bogus", "unknown command"),
        ("set cell_ov_mv 99999", "out of range"),
        ("set cell_ov_mv abc", "not an integer"),
        ("set cell_ov_mv", "usage"),
        ("set no_such_key 1", "unknown key"),
        ("set cell_uv_mv 3700", "below"),  # UV above OV: refused as a pair
        ("rate 5", "out of range"),
        ("rate", "expected one argument"),
        ("soc 1001", "out of range"),
        ("soc -1", "out of range"),
        ("ping extra", "no arguments"),
        ("x" * 200, "too long"),
    ]
    for text, why in bad:
        t, f = c.cmd(text) if len(text) < 100 else c.cmd(text.encode() + b"\n")
        assert t == "err", text
        assert why in f["error"], (text, f)
    t, f = c.cmd(b"\x01\x02garbage\xff\xfe\n")
    assert t == "err" and f["cmd"] is None and "bad bytes" in f["error"]
    c.ser.write(bytes(range(4, 256)) * 4 + b"\n")  # noise without Ctrl-C (0x03): still the firmware's
    c.until(lambda t, f: t == "err")
    c.ser.write(b"config\n")
    after = c.until(lambda t, f: t == "cfg")
    assert after == before
    t, f = c.cmd("ping")  # and it still answers
    assert t == "ok"
    assert c.vb.boots == 1  # never restarted
    assert c.dec.crc_errors == 0 and c.dec.malformed == 0


def test_ctrl_c_gives_the_repl_and_mpremote_resume_works(board):
    c = board("demo")
    c.until(lambda t, f: t == "rep")
    c.ser.write(b"\x03")
    end = time.monotonic() + 20
    while b">>> " not in c.raw and time.monotonic() < end:
        c.read()
    assert b">>> " in c.raw, c.raw[-500:]
    c.close()
    out = subprocess.run([sys.executable, "-m", "mpremote", "connect", c.vb.port, "resume", "exec",
                          "import pwfw; print('fw', pwfw.VERSION, 6 * 7)"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "42" in out.stdout and "fw" in out.stdout
    # Ctrl-D at the friendly REPL soft-resets: main.py runs again and says why
    c2 = type(c)(c.vb)
    c2.ser.write(b"\r\x02\x04")
    hdr = c2.until(lambda t, f: t == "hdr", what="header after soft reset")
    assert hdr["reset"] == "soft" and hdr["boots"] == 2
    c2.until(lambda t, f: t == "rep")
    c2.close()


def test_terminal_line_ends_through_the_serial_port(board):
    # Enter in screen/picocom/minicom/PuTTY sends CR alone; scripts send LF; some send CR LF. Each is one
    # line end, through the virtual board's pty as on a USB CDC port (docs/protocol.md)
    c = board("demo")
    c.until(lambda t, f: t == "rep")
    for end in (b"\r", b"\n", b"\r\n"):
        t, f = c.cmd(b"rate 500 " + end)
        assert (t, f["cmd"], f.get("rate_ms")) == ("ok", "rate", 500), end
    n = len(c.frames)
    c.ser.write(b"ping\rset\r\n")  # two commands, not "pingset"
    c.until(lambda t, f: t == "err" and f.get("cmd") == "set", what="err for set")
    replies = [(t, f["cmd"]) for t, f in c.frames[n:] if t in ("ok", "err")]
    assert replies == [("ok", "ping"), ("err", "set")], replies
