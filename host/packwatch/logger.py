"""`packwatch log`: record a board to a raw capture and a decoded CSV, surviving unplug/replug.

Files (in --out DIR, one pair per rotation): ``<name>.raw`` holds every received line as
``<unix_time> <line bytes>`` (plus ``<unix_time> !<event>`` lines for connect/disconnect/stale),
``<name>.csv`` the log schema (packwatch.logcsv). Both are appended with whole lines, one
``os.write`` per read batch, so killing the logger at any instant leaves readable files holding
every valid frame received so far.
"""
import os
import signal
import sys
import time

from . import ports as _ports
from .cli import COUNT, POSITIVE, number
from .files import create_new
from .logcsv import LogWriter, LOGGER_COLS
from .session import Session, iso_utc  # noqa: F401 - iso_utc: kept importable from here


class RawWriter:
    """The raw capture: ``<unix_time> <line>`` per received line, whole lines per os.write."""

    def __init__(self, path):
        self.path = str(path)
        self.bytes = 0
        self._buf = []
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def write_lines(self, t, lines):
        stamp = b"%.3f " % t
        self._buf.extend(stamp + ln + b"\n" for ln in lines)

    def note(self, t, text):
        self._buf.append(b"%.3f !%s\n" % (t, text.encode()))

    def flush(self):
        if self._buf:
            data = b"".join(self._buf)
            self._buf = []
            while data:
                data = data[os.write(self._fd, data):]
            self.bytes = os.fstat(self._fd).st_size

    def close(self):
        if self._fd is not None:
            self.flush()
            os.close(self._fd)
            self._fd = None


class Files:
    """Names and rotates the capture/CSV pair: a new pair when the CSV passes max_bytes or the UTC day changes."""

    def __init__(self, out_dir, max_bytes=256 << 20, daily=True, prefix="packwatch"):
        self.out_dir = str(out_dir)
        if os.path.exists(self.out_dir) and not os.path.isdir(self.out_dir):
            raise ValueError("--out %s is a file, not a folder: the logger writes a new file pair into a folder"
                             % self.out_dir)
        os.makedirs(self.out_dir, exist_ok=True)
        self.max_bytes = max_bytes
        self.daily = daily
        self.prefix = prefix
        self.created = []
        self.day = None
        self.base = None

    def new_base(self, t, tag=None):
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(t))
        base = os.path.join(self.out_dir, "%s%s-%s" % (self.prefix, "-" + tag if tag else "", stamp))
        n = 1
        while os.path.lexists(base + ".csv") or os.path.lexists(base + ".raw") or base == self.base:
            n += 1
            base = os.path.join(self.out_dir, "%s%s-%s-%d" % (self.prefix, "-" + tag if tag else "", stamp, n))
        self.base = base
        self.day = time.gmtime(t)[:3]
        return base

    def due(self, t, writer):
        if writer is not None and writer.bytes >= self.max_bytes:
            return True
        return self.daily and self.day is not None and time.gmtime(t)[:3] != self.day


class Logger:
    def __init__(self, port, out_dir, duration=None, serial=None, max_bytes=256 << 20, daily=True,
                 baud=115200, status_stream=None, open_port=None, notice_stream=None):
        self.port_arg = port
        self.serial = serial
        self.duration = duration
        self.baud = baud
        self.files = Files(out_dir, max_bytes, daily)
        self.status_stream = status_stream
        self.notice_stream = notice_stream  # one-line hints (a port that does not exist), once each
        self._told_missing = False
        self.open_port = open_port or self._open
        self.session = None
        self.connects = 0
        self.stop = False
        self.ser = None
        self._now = time.time()

    # -- files
    def _new_file(self, t, ext):
        """A new file's path, created empty here: never one that exists (no capture is ever reopened)."""
        while True:
            path = self.files.new_base(t, self.serial) + ext
            try:
                create_new(path)
                return path
            except FileExistsError:  # another logger took the name between the check and the create
                continue

    def _start_files(self, t):
        raw = RawWriter(self._new_file(t, ".raw"))
        sess = Session(self._open_writer, raw)
        if self.session is not None:  # keep statistics and board identity across rotation
            old = self.session
            sess.dec, sess.samples, sess.gaps, sess.reboots = old.dec, old.samples, old.gaps, old.reboots
            sess.hdr, sess.uid, sess.last, sess.last_t, sess.period_s = old.hdr, old.uid, old.last, old.last_t, old.period_s
            sess._seq, sess._ms, sess.events = old._seq, old._ms, old.events
            old.close()
        self.session = sess
        self.files.created.append(raw.path)

    def _open_writer(self, n_cells, n_temps, meta):
        path = self.files.base + ".csv"
        try:
            create_new(path)
        except FileExistsError:  # board shape changed mid-file (or the name was taken meanwhile)
            path = self._new_file(self._now, ".csv")
        self.files.created.append(path)
        return LogWriter(path, n_cells, n_temps, LOGGER_COLS, meta=meta)

    # -- port
    def _resolve(self):
        return _ports.resolve_port(self.port_arg, self.serial)

    def _open(self, url):
        return _ports.open_serial(url, self.baud, timeout=0.1)

    def _connect(self):
        url = self._resolve()
        if url is None:
            self._hint("no board found (see `packwatch ports`); waiting for one to be plugged in, Ctrl-C stops")
            return False
        try:
            self.ser = self.open_port(url)
            self.ser.write(b"\ninfo\n")  # a hdr tells us which board and format, also mid-stream
        except Exception as e:  # noqa: BLE001 - any open/write failure means "not there yet"
            msg = "open-failed %s: %s" % (url, e)
            if msg != getattr(self, "_last_fail", None):  # note each new reason once, not every retry
                self._note(msg)
            self._last_fail = msg
            self._close_port()
            if "://" not in url and not os.path.exists(url) and not self.connects and not self._told_missing:
                self._told_missing = True  # once: after that the status line shows the retries
                found = [p["port"] for p in _ports.list_ports()]
                self._hint("%s does not exist; waiting for it to appear (Ctrl-C stops). %s" % (
                    url, "`packwatch ports` finds: " + ", ".join(found) if found
                    else "`packwatch ports` finds no board: plug one in or start `packwatch sim`"))
            return False
        self.connects += 1
        self._last_fail = None
        self._note("connect %s" % url)
        return True

    def _close_port(self):
        if self.ser is not None:
            try:
                self.ser.close()
            except Exception:  # noqa: BLE001
                pass
        self.ser = None

    def _hint(self, text):
        if self.notice_stream is not None and text != getattr(self, "_last_hint", None):
            self._last_hint = text
            if self.status_stream is self.notice_stream:
                text = "\r\x1b[K" + text  # over the status line, which is redrawn below it
            print("packwatch log: " + text, file=self.notice_stream, flush=True)

    def _note(self, text):
        if self.session is not None and self.session.raw is not None:
            self.session.raw.note(time.time(), text)

    # -- main loop
    def run(self):
        t_start = time.time()
        self._start_files(t_start)
        pending = b""
        backoff = 0.1
        retry = 0
        last_status = 0.0
        was_stale = False
        rate_n, rate_t, rate = 0, t_start, None
        end = None if self.duration is None else t_start + self.duration
        try:
            while not self.stop:
                now = self._now = time.time()
                if end is not None and now >= end:
                    break
                if self.ser is None:
                    if not self._connect():
                        retry += 1
                        if self.status_stream is not None:
                            self.status_stream.write("\r\x1b[Kwaiting for board on %s (retry %d)" % (
                                self.port_arg if self.port_arg not in (None, "auto") else
                                "auto" + (" (serial %s)" % self.serial if self.serial else ""), retry))
                            self.status_stream.flush()
                        self.session.flush()
                        time.sleep(min(backoff, max(0.0, end - now) if end else backoff))
                        backoff = min(backoff * 2, 2.0)
                        continue
                    backoff = 0.1
                    retry = 0
                    pending = b""
                try:
                    data = self.ser.read(max(1, min(65536, self.ser.in_waiting or 1)))
                except Exception as e:  # noqa: BLE001 - unplugged: SerialException / OSError
                    self._note("disconnect: %s" % (str(e).splitlines()[0] if str(e) else type(e).__name__))
                    self._close_port()
                    continue
                if data:  # pace the loop at <= 10 Hz: bigger batches, fewer writes, latency <= 0.1 s
                    time.sleep(max(0.0, 0.1 - (time.time() - now)))
                    try:
                        if self.ser.in_waiting:
                            data += self.ser.read(self.ser.in_waiting)
                    except Exception:  # noqa: BLE001 - unplugged: the next read reports it
                        pass
                # host time to the millisecond, as the capture stores it: `replay` then sees the very
                # same times and reproduces the CSV exactly (host_utc, t_s after a reboot)
                now = round(time.time(), 3)
                if data:
                    parts = (pending + data).split(b"\n")
                    pending = parts.pop()
                    if len(pending) > 4096:  # noise without newlines: capture it, do not grow forever
                        parts.append(pending)
                        pending = b""
                    if parts:
                        self.session.lines(now, [p[:-1] if p.endswith(b"\r") else p for p in parts])
                        if self.session.fmt_error:
                            self.session.flush()
                            print("packwatch log: refused: %s" % self.session.fmt_error, file=sys.stderr)
                            return 3
                        if self.serial is None and self.session.uid:
                            self.serial = str(self.session.uid)
                stale = self.session.stale(now)
                if stale and not was_stale and self.session.last_t is not None:
                    self._note("stale")
                was_stale = stale
                self.session.flush()
                if self.files.due(now, self.session.writer):
                    self._start_files(now)
                if self.status_stream is not None and now - last_status >= 0.5:
                    if now - rate_t >= 2.0:
                        rate = (self.session.samples - rate_n) / (now - rate_t)
                        rate_n, rate_t = self.session.samples, now
                    self.status_stream.write("\r\x1b[K" + self.session.status(now, rate))
                    self.status_stream.flush()
                    last_status = now
        finally:
            self._close_port()
            self.session.close()
            if self.status_stream is not None:
                self.status_stream.write("\n")
        if not self.connects:
            print("packwatch log: could not open %s" % (self.port_arg if self.port_arg != "auto"
                                                         else "any board (see `packwatch ports`)"), file=sys.stderr)
            return 1
        if not self.session.samples:
            d = self.session.dec
            port = self.port_arg if self.port_arg not in (None, "auto") else (self.serial or "the board")
            got = ("nothing received" if not d.lines else "%d lines, no report%s" % (
                d.lines, ", %d not telemetry at all" % d.noise if d.noise else ""))
            print("packwatch log: no telemetry from %s in %.0f s (%s). Check: is the firmware stopped at the "
                  "REPL (`packwatch cmd --port %s restart` starts it)? Is it the right port (`packwatch ports`)? "
                  "For a USB-UART bridge, is --baud %d right?" % (port, time.time() - t_start, got, port, self.baud),
                  file=sys.stderr)
            return 4
        return 0

    def summary(self):
        s = self.session
        return ("samples %d, crc errors %d, malformed %d, oversize %d, gaps %d, reboots %d, connects %d\nfiles: %s"
                % (s.samples, s.dec.crc_errors, s.dec.malformed, s.dec.oversize, s.gaps, s.reboots, self.connects,
                   " ".join(p for p in self.files.created if os.path.exists(p))))


def main(args):
    lg = Logger(args.port, args.out, duration=args.duration, serial=args.serial,
                max_bytes=int(args.rotate_mb * (1 << 20)), daily=not args.no_daily, baud=args.baud,
                status_stream=sys.stderr if sys.stderr.isatty() and not args.quiet else None,
                notice_stream=None if args.quiet else sys.stderr)

    def _stop(*_):
        lg.stop = True
    old = signal.signal(signal.SIGTERM, _stop)
    try:
        rc = lg.run()
    except KeyboardInterrupt:
        rc = 0
    finally:
        signal.signal(signal.SIGTERM, old)
    if not args.quiet:
        print(lg.summary(), file=sys.stderr)
    return rc


def register(sub):
    p = sub.add_parser("log", help="record a board to a raw capture and a CSV log")
    p.add_argument("--port", default="auto", help="serial port or pyserial URL, or 'auto' (default)")
    p.add_argument("--out", default=".", help="output directory (default: .)")
    p.add_argument("--duration", type=POSITIVE, default=None, metavar="S",
                   help="stop after S seconds (default: until Ctrl-C or SIGTERM)")
    p.add_argument("--serial", default=None, help="board serial number / uid to follow across replugs")
    p.add_argument("--rotate-mb", type=number(1), default=256, metavar="MIB",
                   help="start new files past this CSV size (MiB, at least 1; default 256)")
    p.add_argument("--no-daily", action="store_true", help="do not start new files at UTC midnight")
    p.add_argument("--baud", type=COUNT, default=115200,
                   help="baud rate for a USB-UART bridge (default 115200; native USB ports ignore it)")
    p.add_argument("-q", "--quiet", action="store_true", help="no status line, no summary")
    p.set_defaults(func=main)
    return p
