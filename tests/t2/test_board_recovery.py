"""A board flashed with a bad board.json (written straight into the flash, past the host's check) says
why in one `#err` frame, stays at the REPL without resetting, and `packwatch deploy` fixes it."""
import json
import subprocess
import sys
import time

from packwatch.vboard import board_file_for, install_firmware


def test_bad_board_json_stays_reachable_and_deploy_fixes_it(board, tmp_path):
    fs = tmp_path / "flash"
    install_firmware(fs, board_file_for("lfp"))
    b = json.loads((fs / "board.json").read_text())
    b["chemistry"] = "lpf"
    (fs / "board.json").write_text(json.dumps(b))
    c = board("demo", fs_dir=fs)
    err = c.until(lambda t, f: t == "err", timeout=60, what="#err from the start-up")
    assert err["cmd"] == "boot"
    assert err["error"].startswith("board.json: chemistry: 'lpf' is not one of 'lfp', 'nmc'")
    # at the REPL, not in a reset loop: the prompt answers, and the board does not restart
    c.ser.write(b"\r\n")
    end = time.monotonic() + 3
    while time.monotonic() < end and b">>> " not in c.raw:
        c.read()
    assert b">>> " in c.raw
    time.sleep(1.0)
    c.read()
    assert c.vb.boots == 1 and not any(t == "hdr" for t, f in c.frames)
    out = subprocess.run([sys.executable, "-m", "packwatch", "deploy", "--port", c.vb.port, "--board", "sim"],
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    hdr = c.until(lambda t, f: t == "hdr", timeout=60, what="header from the fixed board")
    assert hdr["chem"] == "lfp"
    c.until(lambda t, f: t == "rep", what="telemetry after the fix")
    assert json.loads((fs / "board.json").read_text())["chemistry"] == "lfp"
