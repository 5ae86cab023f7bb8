"""T3: the firmware on official MicroPython (the RPI_PICO UF2) on an emulated RP2040 (rp2040js), behind
the same pty, plant and chip simulations as the unix-port virtual board (packwatch/vboard/rp2040.py).

Skips with one line when node, hil/rp2040/node_modules (`npm ci --prefix hil/rp2040`) or the UF2 and
boot ROM (../shared/rp2040/ beside the checkout, or $PW_RP2040_UF2 / $PW_RP2040_BOOTROM) are missing.
The emulator runs at ~0.2-0.4x real time: these tests boot once each and keep emulated time short.
"""
import os
import shutil
import time
from pathlib import Path

import pytest
import serial

from packwatch.vboard.rp2040 import FLASH_NAME, Rp2040Board, unavailable
from packwatch.protocol import Decoder

ROOT = Path(__file__).resolve().parents[2]
_why = unavailable()
pytestmark = [pytest.mark.t3, pytest.mark.skipif(_why is not None, reason="emulated RP2040: %s" % _why)]

# The Pico's flash is 2 MiB; MicroPython's rp2 port puts its LittleFS filesystem from offset 0xa0000
# to the end (ports/rp2/boards/RPI_PICO: 1408 KiB), in 4096-byte erase blocks.
FS_BLOCKS = (2 * 1024 * 1024 - 0xA0000) // 4096


class Repl:
    """The board's serial port as mpremote sees it: bytes in, the friendly REPL's echo out."""

    def __init__(self, vb, timeout=60.0):
        self.vb = vb
        self.timeout = timeout
        self.ser = serial.serial_for_url(vb.port, timeout=0.05)
        self.buf = bytearray()

    def until(self, pat, timeout=None):
        end = time.monotonic() + (timeout or self.timeout)
        while pat not in self.buf:
            self.buf += self.ser.read(4096)
            if self.vb.error:
                raise RuntimeError("emulated board failed: %r" % self.vb.error)
            if time.monotonic() > end:
                raise AssertionError("no %r within %.0f s (emulated t=%d ms); board said:\n%s"
                                     % (pat, timeout or self.timeout, self.vb.t_ms,
                                        self.vb.console[-1500:].decode("utf-8", "replace")))
        k = self.buf.index(pat) + len(pat)
        out = bytes(self.buf[:k])
        del self.buf[:k]
        return out

    def prompt(self):
        self.ser.write(b"\x03\r\n")  # stop whatever runs, then a fresh prompt
        self.until(b">>> ")
        time.sleep(0.2)
        self.ser.reset_input_buffer()
        self.buf.clear()

    def eval(self, expr):
        """print(expr) at the REPL; its output line."""
        self.ser.write(b"print(repr(%s))\r\n" % expr.encode())
        self.until(b"\r\n")  # the echo
        return self.until(b"\r\n>>> ")[:-6].decode()

    def close(self):
        self.ser.close()


@pytest.fixture
def rp2040(tmp_path):
    boards = []

    def start(scenario="demo", **kw):
        vb = Rp2040Board(scenario, fs_dir=tmp_path / ("b%d" % len(boards)), **kw).start()
        boards.append(vb)
        return vb

    yield start
    for vb in boards:
        vb.stop()


def test_repl_and_the_filesystem_persists_across_a_power_cycle(rp2040):
    vb = rp2040()
    r = Repl(vb)
    r.prompt()
    assert "RP2040" in r.eval("__import__('sys').implementation._machine")
    st = eval(r.eval("__import__('os').statvfs('/')"))
    assert st[0] == 4096 and st[2] == FS_BLOCKS  # first boot formatted the whole filesystem area
    token = os.urandom(12).hex()
    r.ser.write(b"f = open('keep.txt', 'w'); f.write(%r); f.close()\r\n" % token.encode())
    r.until(b">>> ")
    r.close()
    flash = vb.fs_dir / FLASH_NAME
    assert flash.stat().st_size == 2 * 1024 * 1024
    vb.restart()  # kill -9 of the emulator, as a pulled cable: the flash file is all that is left
    r = Repl(vb)
    r.prompt()
    assert r.eval("open('keep.txt').read()") == repr(token)
    assert "keep.txt" in r.eval("__import__('os').listdir()")
    r.close()


def test_deploy_then_crc_valid_telemetry_matching_the_plant(rp2040, pico_flash, tmp_path):
    image, said = pico_flash  # `packwatch deploy --port <the emulated board> --board pico` (conftest.py)
    assert "armv6m" in said and "verified" in said
    flash = tmp_path / "deployed.bin"
    shutil.copyfile(image, flash)
    vb = rp2040("demo", truth_every_ms=10, flash=flash)  # power on: main.py starts the firmware
    ser = serial.serial_for_url(vb.port, timeout=0.05)
    dec = Decoder()
    frames = []
    end = time.monotonic() + 90
    while sum(t == "rep" for t, _ in frames) < 4:
        frames += dec.feed(ser.read(4096))
        assert not vb.error, vb.error
        assert time.monotonic() < end, "no telemetry; board said:\n" + vb.console[-1500:].decode("utf-8", "replace")
    ser.close()
    assert dec.crc_errors == 0 and dec.malformed == 0
    hdr = next(f for t, f in frames if t == "hdr")
    assert hdr["board"] == "pico" and hdr["cells"] == 16
    truth = {row[0]: row for row in vb.truth}  # a row per 10 ms plant step
    n = 0
    for t, f in frames:
        if t != "rep":
            continue
        assert f["fault"] == 0, f  # every chip answered over the emulated I2C0 and ADC
        # the sample a report carries was taken in the last step at or before its `ms` (device ticks =
        # emulated time = plant time on the first boot); skip reports within a second of a load step
        step = truth.get((f["ms"] // 10) * 10 + 10) or truth.get((f["ms"] // 10) * 10)
        prev = truth.get(step[0] - 1000) if step else None
        if step is None or prev is None or abs(prev[1] - step[1]) > 500:
            continue
        n += 1
        for got, want in zip(f["cell_mv"], step[3], strict=True):
            assert abs(got - want / 10) <= 6, (f["ms"], got, want)  # 1 mV noise (3 sigma) + quantisation
        assert abs(f["i_ma"] - step[1]) <= 20 + abs(step[1]) // 200  # CC2 in 10 mA units
        for got, want in zip(f["t_dc"][:3], step[4][:3]):
            assert abs(got - want) <= 10  # the NTCs on the emulated ADC: 1 °C
    assert n >= 2
