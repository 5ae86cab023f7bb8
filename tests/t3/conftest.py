"""T3 fixtures: one `packwatch deploy` per session (about a minute of emulation), its flash image
copied for every test that needs the firmware on the board.

With pytest-xdist the workers share the deploy through a lock file: the first deploys, the others
wait and copy its image.
"""
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import serial

from packwatch.vboard.rp2040 import FLASH_NAME, Rp2040Board, unavailable
from packwatch.protocol import Decoder

ROOT = Path(__file__).resolve().parents[2]


def wait_prompt(vb, timeout=60.0):
    """The friendly REPL's prompt on a board that has no firmware yet (the emulator is up)."""
    with serial.serial_for_url(vb.port, timeout=0.05) as ser:
        buf = bytearray()
        end = time.monotonic() + timeout
        ser.write(b"\x03\r\n")
        while b">>> " not in buf:
            buf += ser.read(4096)
            assert not vb.error, vb.error
            assert time.monotonic() < end, "no REPL prompt: " + vb.console[-500:].decode("utf-8", "replace")


@pytest.fixture(scope="session")
def pico_flash(tmp_path_factory):
    """(flash image with the firmware deployed, deploy's output). Deployed with --no-restart: the
    firmware has never run on it, so each test's board starts from a first boot."""
    why = unavailable()
    if why:
        pytest.skip("emulated RP2040: %s" % why)
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # this session's folder, the same for every xdist worker
    image = shared / "pico-deployed.bin"
    log = shared / "pico-deployed.txt"
    with open(shared / "pico-deployed.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not image.exists():
            work = tmp_path_factory.mktemp("deploy")
            vb = Rp2040Board("demo", fs_dir=work).start()
            try:
                wait_prompt(vb)
                out = subprocess.run([sys.executable, "-m", "packwatch", "deploy", "--port", vb.port, "--board",
                                      "pico", "--no-restart"], capture_output=True, text=True, timeout=300,
                                     cwd=str(ROOT))
            finally:
                vb.stop()
            log.write_text("rc=%d\n%s%s" % (out.returncode, out.stdout, out.stderr))
            if out.returncode == 0:
                shutil.copyfile(work / FLASH_NAME, image)
        text = log.read_text()
    if not image.exists():
        pytest.fail("packwatch deploy to the emulated RP2040 failed:\n" + text)
    return image, text


class Telemetry:
    """Frames from a board's serial port, kept in order; commands by line."""

    def __init__(self, vb, timeout=60.0):
        self.vb = vb
        self.timeout = timeout
        self.ser = serial.serial_for_url(vb.port, timeout=0.05)
        self.dec = Decoder()
        self.frames = []

    def poll(self):
        got = self.dec.feed(self.ser.read(4096))
        self.frames += got
        assert not self.vb.error, self.vb.error
        return got

    def until(self, pred, timeout=None, what="a matching frame"):
        end = time.monotonic() + (timeout or self.timeout)
        while True:
            for t, f in self.poll():
                if pred(t, f):
                    return f
            if time.monotonic() > end:
                raise AssertionError("no %s within %.0f s (emulated t=%d ms); board said:\n%s" % (
                    what, timeout or self.timeout, self.vb.t_ms, self.vb.console[-1500:].decode("utf-8", "replace")))

    def send(self, line):
        self.ser.write(line.encode() + b"\n")

    def close(self):
        self.ser.close()


# MicroPython's rp2 port keeps a LittleFS2 filesystem from this flash offset to the end, in 4096-byte
# blocks, mounted with progsize=256 (ports/rp2/modules/_boot.py; hil/rp2040/README.md)
FS_OFFSET = 0xA0000


def set_board_json(flash, over, out):
    """Write board.json with `over` merged in (a dict value updates that section) into the filesystem
    of the flash image `flash`, as `out` (its LittleFS edited offline with littlefs-python: no emulated
    time, where a `packwatch deploy` of another board file takes a minute). Returns the board dict."""
    import littlefs

    img = bytearray(Path(flash).read_bytes())
    fs = littlefs.LittleFS(block_size=4096, block_count=(len(img) - FS_OFFSET) // 4096, read_size=32,
                           prog_size=256, lookahead_size=32, mount=False)
    fs.context.buffer[:] = img[FS_OFFSET:]
    fs.mount()
    with fs.open("board.json", "r") as f:
        board = json.load(f)
    for k, v in over.items():
        board[k] = dict(board.get(k) or {}, **v) if isinstance(v, dict) else v
    with fs.open("board.json", "w") as f:
        f.write(json.dumps(board))
    fs.unmount()
    img[FS_OFFSET:] = fs.context.buffer
    Path(out).write_bytes(img)
    return board


@pytest.fixture
def pico(pico_flash, tmp_path):
    """start(scenario, board=None, **kw) -> (board, Telemetry): an emulated Pico booting the deployed
    firmware; `board`: keys to change in the deployed board.json (set_board_json)."""
    boards = []

    def start(scenario="demo", board=None, **kw):
        d = tmp_path / ("b%d" % len(boards))
        d.mkdir()
        if board:
            bf = d / "board.json"  # the same file for the bridge (its chips, pins) as on the flash
            bf.write_text(json.dumps(set_board_json(pico_flash[0], board, d / FLASH_NAME)))
            kw["board_file"] = bf
        else:
            shutil.copyfile(pico_flash[0], d / FLASH_NAME)
        vb = Rp2040Board(scenario, fs_dir=d, **kw).start()
        tel = Telemetry(vb)
        boards.append((vb, tel))
        return vb, tel

    yield start
    for vb, tel in boards:
        tel.close()
        vb.stop()
