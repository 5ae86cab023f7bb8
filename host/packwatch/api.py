"""Python API for notebooks and scripts.

    >>> from packwatch.api import open_log, Board
    >>> log = open_log("run.csv"); df = log.to_pandas()
    >>> with Board("/dev/ttyACM0") as b:
    ...     b.command("rate 500")          # -> {'cmd': 'rate', 'rate_ms': 500}
    ...     for topic, fields in b.read(10): ...
"""
import collections
import time

from .logcsv import read_log
from .protocol import Decoder


def open_log(path, columns=None):
    """Read a CSV log (see packwatch.logcsv.Log; ``.to_pandas()`` when pandas is installed)."""
    return read_log(path, columns)


class CommandError(RuntimeError):
    """The device answered ``#err``; ``reply`` holds its fields."""

    def __init__(self, reply):
        RuntimeError.__init__(self, "%s: %s" % (reply.get("cmd"), reply.get("error")))
        self.reply = reply


class Board:
    """A connected board: decoded messages in, commands out. Any pyserial URL works."""

    def __init__(self, port, baud=115200, timeout=5.0, open_port=None):
        self.port = port
        self.timeout = timeout
        self.decoder = Decoder()
        self._queue = collections.deque()
        if open_port is None:
            import serial
            self.ser = serial.serial_for_url(port, baudrate=baud, timeout=0.05)
        else:
            self.ser = open_port(port)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.ser.close()

    def _pump(self):
        data = self.ser.read(max(1, self.ser.in_waiting or 1))
        if data:
            self._queue.extend(self.decoder.feed(data))
        return bool(data)

    def next(self, timeout=None):
        """The next decoded message (topic, fields); TimeoutError when none comes in time."""
        end = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not self._queue:
            if time.monotonic() > end:
                raise TimeoutError("no message from %s" % self.port)
            self._pump()
        return self._queue.popleft()

    def read(self, n, timeout=None):
        """The next n messages, as a list of (topic, fields)."""
        return [self.next(timeout) for _ in range(n)]

    def __iter__(self):
        while True:
            yield self.next(timeout=1e9)

    def command(self, line, timeout=None):
        """Send one command line; returns the fields of its ``#ok`` reply (for ``config``: the
        ``cfg`` fields), raises CommandError on ``#err``. Other messages stay queued for read()."""
        name = line.split(" ", 1)[0]
        self.ser.write(line.encode("ascii") + b"\n")
        end = time.monotonic() + (self.timeout if timeout is None else timeout)
        seen = len(self._queue)
        while True:
            for i in range(seen, len(self._queue)):
                topic, f = self._queue[i]
                hit = (topic in ("ok", "err") and f.get("cmd") in (name, None)) or (name == "config" and topic == "cfg")
                if hit:
                    del self._queue[i]
                    if topic == "err":
                        raise CommandError(f)
                    return f
            seen = len(self._queue)
            if time.monotonic() > end:
                raise TimeoutError("no reply to %r from %s" % (line, self.port))
            self._pump()
