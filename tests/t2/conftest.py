"""T2: end to end through the virtual board's pty, as a host tool sees a real board.

`board(scenario, ...)` starts a VirtualBoard (lockstep: hours of pack time in seconds) and returns a
`Client` on its serial port: `client.cmd("ping")` sends a command and returns its ok/err reply,
`client.until(pred)` reads frames until one matches. Frames are decoded by packwatch.protocol, the
same decoder the logger uses, so a frame the firmware gets wrong fails the test as a CRC/format error.
"""
import time

import pytest
import serial

from packwatch.vboard import VirtualBoard
from packwatch.protocol import Decoder


class Client:
    def __init__(self, vb, timeout=60.0):
        self.vb = vb
        self.timeout = timeout
        self.ser = serial.serial_for_url(vb.port, timeout=0.05)
        self.dec = Decoder()
        self.frames = []  # every frame seen, in order: (topic, fields)
        self.raw = bytearray()
        self._pos = 0  # frames before this were looked at by until()

    def close(self):
        self.ser.close()

    def read(self):
        try:
            data = self.ser.read(65536)
        except serial.SerialException:  # unplugged (a scenario event): reopen once the port is back
            self.ser.close()
            time.sleep(0.05)
            try:
                self.ser = serial.serial_for_url(self.vb.port, timeout=0.05)
            except (serial.SerialException, OSError):
                pass
            return []
        if data:
            self.raw += data
            got = self.dec.feed(data)
            self.frames += got
            return got
        if self.vb.error:
            raise RuntimeError("virtual board failed: %r" % self.vb.error)
        return []

    def until(self, pred, timeout=None, what="a matching frame"):
        """First frame after the one the previous until() returned that satisfies pred(topic, fields)."""
        end = time.monotonic() + (timeout or self.timeout)
        while True:
            while self._pos < len(self.frames):
                t, f = self.frames[self._pos]
                self._pos += 1
                if pred(t, f):
                    return f
            if time.monotonic() > end:
                break
            self.read()
        raise AssertionError("no %s within %.0f s (virtual t=%d ms); firmware console:\n%s"
                             % (what, timeout or self.timeout, self.vb.t_ms,
                                self.vb.console[-1500:].decode("utf-8", "replace")))

    def cmd(self, text, timeout=20.0):
        """Send one command line; return (topic, fields) of its ok/err reply."""
        self.read()
        self._pos = len(self.frames)  # the reply comes after this point
        if isinstance(text, str):
            name = text.split(" ")[0]
            self.ser.write(text.encode() + b"\n")
        else:  # raw bytes, sent as they are: the reply may name no command
            name = None
            self.ser.write(text)
        reply = {}

        def match(topic, f):
            if topic in ("ok", "err") and (f.get("cmd") == name or name is None or topic == "err"):
                reply["topic"] = topic
                return True
            return False
        f = self.until(match, timeout, "reply to %r" % (text,))
        return reply["topic"], f

    # --- virtual time at defined points (tests must not depend on how fast their own thread runs) ---
    def freeze(self, timeout=None):
        """Stop virtual time: the firmware waits at its next step. Returns the frozen time (ms)."""
        self.vb.hold_at_ms = self.vb.t_ms
        end = time.monotonic() + (timeout or self.timeout)
        while not self.vb.held:
            self.read()
            assert time.monotonic() < end, "the board did not stop at %d ms" % self.vb.hold_at_ms
        return self.vb.hold_at_ms

    def advance(self, ms, timeout=None):
        """Let a frozen board run `ms` more of virtual time, then wait until it stands still again."""
        self.vb.hold_at_ms += ms
        end = time.monotonic() + (timeout or self.timeout)
        while not self.vb.held:
            self.read()
            assert time.monotonic() < end, "virtual time stuck at %d ms" % self.vb.t_ms
        self.read()

    def cmd_frozen(self, text, max_ms=2000):
        """cmd() on a frozen board: the command is taken at the next sample (a defined virtual time);
        the board stands still again right after its reply."""
        self.read()
        self._pos = len(self.frames)
        name = text.split(" ")[0]
        self.ser.write(text.encode() + b"\n")
        for _ in range(0, max_ms, 100):
            self.advance(100)
            for t, f in self.frames[self._pos:]:
                if t in ("ok", "err") and f.get("cmd") == name:
                    self._pos = len(self.frames)
                    return t, f
        raise AssertionError("no reply to %r within %d virtual ms" % (text, max_ms))

    def unlocked(self, text, key="packwatch"):
        """`unlock <key>` (sim.json has none: the documented default) and then the command `text` at
        two defined virtual times 100 ms apart (the board frozen meanwhile): in lockstep, the 60 s an
        unlock lasts could otherwise pass between the two lines. Returns the command's reply."""
        self.freeze()
        t, f = self.cmd_frozen("unlock " + key)
        assert t == "ok", f
        reply = self.cmd_frozen(text)
        self.vb.hold_at_ms = None
        return reply

    def reports(self, since=0):
        return [f for t, f in self.frames[since:] if t == "rep"]

    def wait_t(self, t_ms, timeout=None):
        """Read (so flow control never stalls the board) until virtual time passes t_ms."""
        end = time.monotonic() + (timeout or self.timeout)
        while self.vb.t_ms < t_ms:
            self.read()
            assert time.monotonic() < end, "virtual time stuck at %d ms" % self.vb.t_ms
        self.read()


@pytest.fixture
def board(tmp_path):
    started = []

    def start(scenario="demo", seed=1, hold=False, **kw):
        kw.setdefault("fs_dir", tmp_path / ("fs%d" % len(started)))
        kw.setdefault("truth_every_ms", 1000)  # the plant's truth, a row a second (tests.support.soc_vs_truth)
        vb = VirtualBoard(scenario, seed=seed, **kw)
        if hold:  # frozen from boot, before its first step, until the test lifts vb.hold_at_ms
            vb.hold_at_ms = 0
        vb.start()
        c = Client(vb)
        started.append((vb, c))
        return c

    yield start
    for vb, c in started:
        try:
            c.close()
        finally:
            vb.stop()
