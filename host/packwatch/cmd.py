"""`packwatch cmd`: send command lines to a board and print its replies; with none, a console.

    packwatch cmd --port P "set cell_ov_mv 3650" "save"     one reply per command, exit code below
    packwatch cmd --port P restart                          firmware loop again after mpremote/REPL
    packwatch cmd --port P                                  interactive console (readline history)

Each command waits for its ``#ok``/``#err`` (docs/protocol.md, decoded by packwatch.protocol), and
the ``cfg``/``hdr`` lines it produces are shown too. Exit codes: 0 every reply ``ok``; 1 a reply was
``err`` (the commands after it are not sent unless ``--keep-going``); 3 no reply in time; 4 no board
/ the port could not be opened or was lost. Port handling (``auto``, pyserial URLs, ``--serial``) is
packwatch.ports', as for ``packwatch log``.
"""
import json
import os
import sys
import threading
import time

from . import ports as _ports
from .cli import COUNT, POSITIVE
from .protocol import Decoder

EXIT_OK, EXIT_ERR, EXIT_TIMEOUT, EXIT_NO_BOARD = 0, 1, 3, 4
TELEMETRY = ("rep", "cell")
PROMPT = "pw> "
REPL_PROMPT = b">>> "          # MicroPython's friendly REPL (what `mpremote resume` leaves behind)
SOFT_REBOOT = b"soft reboot"   # "MPY: soft reboot", printed by MicroPython on every soft reset
RAW_BANNER = b"raw REPL; CTRL-B to exit"  # printed on entering the raw REPL (Ctrl-A)
LOCAL = ("restart", "quit", "exit", "help")
HELP = ("board commands (docs/protocol.md): ping, info, config, rate MS, soc PM, soc reset, zero, "
        "set KEY INT, unlock KEY, lock, afe, balance [auto|off|cells MASK [MIN]], save, clear, mem, reboot\nlocal: restart (soft-reset the board so its firmware "
        "runs again, e.g. after mpremote), quit (or Ctrl-D)")


class Lost(Exception):
    """The port went away (unplugged) while we were using it."""


class Watch:
    """Something a caller waits for: a frame matching ``frame(topic, fields)`` or the bytes ``text``,
    among what arrives from reads started after the watch was made."""

    def __init__(self, since, frame=None, text=None):
        self.since, self.frame, self.text = since, frame, text
        self.hit = None
        self.buf = b""


class Link:
    """One open port: reads, decodes (packwatch.protocol.Decoder), hands every frame to ``on_frame``
    and resolves watches. Either the caller pumps it while it waits, or a reader thread does."""

    def __init__(self, ser, port, on_frame=None):
        self.ser, self.port, self.on_frame = ser, port, on_frame
        self.dec = Decoder()
        self.threaded = False
        self.received = 0
        self.repl_seen = False    # a friendly-REPL prompt came by: the firmware is not running
        self.uid = None
        self._tail = b""          # the last bytes read: a prompt may come split over reads
        self._reads = 0
        self._watches = []
        self._lock = threading.Lock()
        self._cond = threading.Condition()  # notified after each read, for waiters on the reader thread

    def watch(self, frame=None, text=None):
        with self._lock:
            w = Watch(self._reads, frame, text)
            self._watches.append(w)
        return w

    def write(self, data):
        try:
            self.ser.write(data)
        except Exception as e:  # noqa: BLE001 - SerialException / OSError: unplugged
            raise Lost(str(e).splitlines()[0] if str(e) else type(e).__name__) from None

    def pump(self):
        with self._lock:
            k = self._reads
            self._reads += 1
        try:
            data = self.ser.read(max(1, min(65536, self.ser.in_waiting or 1)))
        except Exception as e:  # noqa: BLE001
            raise Lost(str(e).splitlines()[0] if str(e) else type(e).__name__) from None
        if not data:
            return
        self.received += len(data)
        seen = self._tail + data
        if REPL_PROMPT in seen:
            self.repl_seen = True
        self._tail = seen[1 - len(REPL_PROMPT):]
        with self._lock:
            watches = [w for w in self._watches if w.hit is None and w.since <= k]
        for w in watches:
            if w.text is not None:
                w.buf += data
                if w.text in w.buf:
                    w.hit = w.text
                else:
                    w.buf = w.buf[-len(w.text):]
        for topic, f in self.dec.feed(data):
            if topic == "hdr" or (topic == "ok" and f.get("cmd") == "info"):
                self.uid = f.get("uid") or self.uid
                self.repl_seen = False
            if self.on_frame is not None:
                self.on_frame(topic, f)
            for w in watches:
                if w.frame is not None and w.hit is None and w.frame(topic, f):
                    w.hit = (topic, f)
        if watches:
            with self._cond:
                self._cond.notify_all()

    def wait(self, w, timeout, *more):
        """The first hit among the watches w, *more (checked in that order), or None after
        ``timeout`` seconds; the watches are done with afterwards."""
        ws = (w,) + more
        end = time.monotonic() + timeout

        def hit():
            return next((x.hit for x in ws if x.hit is not None), None)
        try:
            while hit() is None:
                left = end - time.monotonic()
                if left <= 0:
                    break
                if self.threaded:
                    with self._cond:
                        if hit() is None:
                            self._cond.wait(min(left, 0.5))
                else:
                    self.pump()
        finally:
            with self._lock:
                self._watches = [x for x in self._watches if x not in ws]
        return hit()

    def close(self):
        try:
            self.ser.close()
        except Exception:  # noqa: BLE001
            pass


def _val(v):
    return v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))


def afe_table(f, intended=None):
    """The `afe` frame (docs/protocol.md) as a table: setting, value read back from the chip, unit,
    and what the board file asks for (``intended``: pwfw.afe_config.afe_protect(board)) when known."""
    from pwfw.afe_config import AFE_KEYS

    units = {r[0]: r[5] for r in AFE_KEYS}
    rows = [("setting", "chip", "unit") + (("board file",) if intended else ())]
    for k, v in f.items():
        rows.append((k, _val(v), units.get(k, "")) + ((_val(intended.get(k, "")),) if intended else ()))
    w = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "afe\n" + "\n".join("  " + "  ".join(c.ljust(w[i]) if i != 1 else c.rjust(w[i]) for i, c in enumerate(r)).rstrip()
                                for r in rows)


def format_frame(topic, f, intended=None):
    """One frame as a person reads it: ``ok  set  key=cell_ov_mv val=3650``, ``err set  <why>``,
    ``cfg`` one key per line, ``afe`` a table, other topics ``topic  key=value ...``."""
    if topic == "afe":
        return afe_table(f, intended)
    if topic in ("ok", "err"):
        head = "%-3s %s" % (topic, f.get("cmd") or "-")
        if topic == "err":
            return "%s  %s" % (head, f.get("error"))
        rest = " ".join("%s=%s" % (k, _val(v)) for k, v in f.items() if k != "cmd")
        return head + ("  " + rest if rest else "")
    if topic == "cfg":
        w = max([len(k) for k in f] + [1])
        return "cfg\n" + "\n".join("  %-*s  %s" % (w, k, _val(v)) for k, v in f.items())
    return "%-3s %s" % (topic, " ".join("%s=%s" % (k, _val(v)) for k, v in f.items()))


class Printer:
    """What is shown: replies and the cfg/hdr lines of a command; telemetry (rep, cell) only with
    --show-telemetry; outside a command only in the console (events, a hdr after a reboot)."""

    def __init__(self, out=None, show_telemetry=False, as_json=False, console=False, intended=None):
        self.out = out or sys.stdout
        self.intended = intended  # the board file's AFE settings, shown beside `afe`'s read-back
        self.show_telemetry, self.as_json, self.console = show_telemetry, as_json, console
        self.active = False
        self.quiet = False       # nothing shown (restart's probe)
        self.at_prompt = False   # the console's prompt is on screen: print above it
        self.get_line = None     # readline's line buffer, to redraw it after a message
        self._hdr = None         # hdr shown for the current command (the `info` reply repeats it)
        self._lock = threading.Lock()

    def begin(self):
        self.active, self._hdr = True, None

    def end(self):
        self.active = False

    def frame(self, topic, f):
        if self.quiet or (topic in TELEMETRY and not self.show_telemetry):
            return
        if not (self.active or self.console or self.show_telemetry):
            return
        if self.as_json:
            self.line(json.dumps(dict(topic=topic, **f), separators=(",", ":")))
            return
        if topic == "hdr":
            self._hdr = {k: v for k, v in f.items()}
        elif topic == "ok" and self._hdr is not None and {k: v for k, v in f.items() if k != "cmd"} == self._hdr:
            f = {"cmd": f.get("cmd")}  # `info`: its fields were just shown on the hdr line
        self.line(format_frame(topic, f, self.intended))

    def line(self, text):
        with self._lock:
            if self.at_prompt:
                rest = self.get_line() if self.get_line else ""
                self.out.write("\r\x1b[K" + text + "\n" + PROMPT + rest)
            else:
                self.out.write(text + "\n")
            self.out.flush()


def _say(text):
    print("packwatch cmd: " + text, file=sys.stderr)


def _restart_hint(port):
    return "`packwatch cmd --port %s restart` starts the firmware again" % port


def _no_reply(link, what, timeout):
    if link.repl_seen:
        why = "the board is at the MicroPython REPL (mpremote leaves it there); " + _restart_hint(link.port)
    elif not link.received:
        why = "nothing came from the port: is the firmware running? " + _restart_hint(link.port)
    elif not link.dec.frames:
        why = "the %d bytes that came hold no packwatch frame: is this the board's port (`packwatch ports`)?" % (
            link.received)
    else:
        why = "the board sent %d frames but no reply" % link.dec.frames
    return "no reply to %s from %s within %g s: %s" % (what, link.port, timeout, why)


def send(link, printer, line, timeout):
    """Send one command line; EXIT_OK / EXIT_ERR from its reply, EXIT_TIMEOUT with one line."""
    name = line.split(" ", 1)[0]
    w = link.watch(frame=lambda t, f: t in ("ok", "err") and f.get("cmd") in (name, None))
    printer.begin()
    try:
        link.write(line.encode("utf-8", "replace") + b"\n")  # non-ASCII: the firmware says "bad bytes"
        hit = link.wait(w, timeout)
    finally:
        printer.end()
    if hit is None:
        _say(_no_reply(link, repr(line), timeout))
        return EXIT_TIMEOUT
    return EXIT_OK if hit[0] == "ok" else EXIT_ERR


def restart(link, printer, timeout):
    """Soft-reset the board so main.py (the firmware loop) runs again, from wherever it is: the
    running firmware (`save` first, then Ctrl-C), the friendly REPL or the raw REPL. Then Ctrl-C
    cancels any half-typed line, Ctrl-B leaves the raw REPL (main.py only runs from the friendly
    REPL), Ctrl-D on an empty line soft-resets (as `mpremote soft-reset` and a Pico do)."""
    # Which state? Ctrl-A: either REPL answers with the raw REPL banner; the firmware takes it for a
    # bad byte and answers the line it ends ("bad bytes"), then the ping.
    w_fw = link.watch(frame=lambda t, f: t in ("ok", "err") and f.get("cmd") in ("ping", None))
    w_ping = link.watch(frame=lambda t, f: t in ("ok", "err") and f.get("cmd") == "ping")
    w_repl = link.watch(text=RAW_BANNER)
    printer.quiet = True  # the probe's replies are not the user's
    try:
        link.write(b"\r\x01\nping\n")
        if link.wait(w_fw, timeout, w_repl) is None:
            _say("neither MicroPython's REPL nor the firmware answered on %s within %g s: is the board on "
                 "this port (`packwatch ports`)?" % (link.port, timeout))
            return EXIT_TIMEOUT
        if w_fw.hit is not None:
            link.wait(w_ping, timeout)
    finally:
        printer.quiet = False
        link.wait(w_ping, 0, w_repl)
    if w_fw.hit is not None:
        rc = send(link, printer, "save", timeout)  # the state as of now survives the restart
        if rc == EXIT_TIMEOUT:
            return rc
        w = link.watch(text=REPL_PROMPT)
        link.write(b"\x03")  # stop the firmware loop (KeyboardInterrupt): the REPL comes up
        if link.wait(w, timeout) is None:
            _say("the firmware on %s did not stop on Ctrl-C within %g s" % (link.port, timeout))
            return EXIT_TIMEOUT
    w_boot = link.watch(text=SOFT_REBOOT)
    w_hdr = link.watch(frame=lambda t, f: t == "hdr")
    printer.begin()
    try:
        link.write(b"\r\x03\x02\x04")
        if link.wait(w_boot, timeout) is None:
            link.wait(w_hdr, 0)
            _say("no soft reboot on %s within %g s: is a MicroPython board on this port?" % (link.port, timeout))
            return EXIT_TIMEOUT
        hit = link.wait(w_hdr, timeout)
    finally:
        printer.end()
    if hit is None:
        _say("%s soft-reset but its firmware sent no hdr within %g s: main.py did not start "
             "(see `mpremote connect %s repl`)" % (link.port, timeout, link.port))
        return EXIT_TIMEOUT
    f = hit[1]
    printer.line("restarted: firmware %s on board %s, reset %s, boot %s"
                 % (f.get("fw"), f.get("board"), f.get("reset"), f.get("boots")))
    return EXIT_OK


def connect(port, serial, baud, on_frame=None):
    """A Link, or (None, one line saying why)."""
    url = _ports.resolve_port(port, serial)
    if url is None:
        return None, ("no board found%s (see `packwatch ports`; plug one in or start `packwatch sim`)"
                      % (" with serial %s" % serial if serial else ""))
    try:
        ser = _ports.open_serial(url, baud, timeout=0.05)
    except Exception as e:  # noqa: BLE001 - SerialException / OSError / ValueError for a bad URL
        return None, "could not open %s: %s" % (url, str(e).splitlines()[0] if str(e) else type(e).__name__)
    return Link(ser, url, on_frame), None


def run_commands(link, printer, lines, timeout, restart_timeout, keep_going=False):
    rc = EXIT_OK
    link.write(b"\n")  # end whatever half line the board may hold; an empty line gets no reply
    for i, line in enumerate(lines):
        line = line.strip()
        if not line:
            continue
        r = restart(link, printer, restart_timeout) if line == "restart" else send(link, printer, line, timeout)
        if r == EXIT_TIMEOUT:
            return r
        if r == EXIT_ERR:
            rc = EXIT_ERR
            if not keep_going:
                left = [x.strip() for x in lines[i + 1:] if x.strip()]
                if left:
                    _say("not sent after the err: " + "; ".join(left) + " (--keep-going sends them)")
                return rc
    return rc


class Console:
    """Interactive: a reader thread prints frames as they arrive (above the prompt) and reconnects
    after an unplug; the main thread reads lines (readline, with history) and sends them."""

    def __init__(self, args, printer):
        self.args, self.printer = args, printer
        self.link = None
        self.stop = False
        self.serial = args.serial

    def _reader(self):
        retry = 0
        while not self.stop:
            link = self.link
            if link is None:
                retry += 1
                self.printer.line("waiting for board on %s (retry %d)" % (self.args.port if self.args.port != "auto"
                                                                          else "auto", retry))
                for _ in range(10):
                    if self.stop:
                        return
                    time.sleep(0.1)
                link, why = connect(self.args.port, self.serial, self.args.baud, self.printer.frame)
                if link is None:
                    continue
                link.threaded = True
                self.link, retry = link, 0
                self.printer.line("connected to %s" % link.port)
                continue
            try:
                link.pump()
                if link.uid and self.args.port == "auto":
                    self.serial = link.uid  # follow this board across replugs
            except Lost as e:
                self.printer.line("lost %s: %s" % (link.port, e))
                link.close()
                self.link = None

    def run(self, interactive):
        if interactive:
            try:
                import readline
            except ImportError:  # pragma: no cover - Windows without pyreadline
                readline = None
            hist = self.args.history
            if readline is not None:
                try:
                    readline.read_history_file(hist)
                except OSError:
                    pass
                readline.set_history_length(1000)
                self.printer.get_line = readline.get_line_buffer
            self.printer.line("connected to %s; board commands, `restart`, `help`; Ctrl-D quits"
                              % self.link.port)
        self.link.threaded = True
        t = threading.Thread(target=self._reader, name="packwatch-cmd-reader", daemon=True)
        t.start()
        rc = EXIT_OK
        try:
            self.link.write(b"\ninfo\n")  # say which board this is (the hdr line)
        except Lost:
            pass
        try:
            while True:
                self.printer.at_prompt = interactive
                try:
                    line = input(PROMPT) if interactive else sys.stdin.readline()
                except EOFError:
                    line = None
                finally:
                    self.printer.at_prompt = False
                if line is None or (not interactive and not line):
                    break
                line = line.strip()
                if not line:
                    continue
                if line in ("quit", "exit"):
                    break
                if line == "help":
                    self.printer.line(HELP)
                    continue
                link = self.link
                if link is None:
                    self.printer.line("not connected: %r not sent" % line)
                    rc = max(rc, EXIT_NO_BOARD)
                    continue
                try:
                    r = (restart(link, self.printer, self.args.restart_timeout) if line == "restart"
                         else send(link, self.printer, line, self.args.timeout))
                except Lost as e:
                    self.printer.line("lost %s: %s" % (link.port, e))
                    r = EXIT_NO_BOARD
                rc = max(rc, r) if r != EXIT_OK else rc
        except KeyboardInterrupt:
            pass
        finally:
            self.stop = True
            t.join(timeout=2)
            if self.link is not None:
                self.link.close()
            if interactive:
                if self.printer.get_line is not None:
                    try:
                        import readline
                        os.makedirs(os.path.dirname(self.args.history) or ".", exist_ok=True)
                        readline.write_history_file(self.args.history)
                    except (OSError, ImportError):
                        pass
                sys.stdout.write("\n")
        return rc


def default_history():
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "packwatch", "cmd_history")


def main(args):
    console = not args.commands
    intended = None
    if getattr(args, "board_file", None):
        from pwfw.afe_config import afe_protect

        from .boardfile import BoardFileError, load_board
        try:
            intended = afe_protect(load_board(args.board_file))
        except (BoardFileError, ValueError) as e:
            _say(str(e))
            return EXIT_NO_BOARD
    printer = Printer(show_telemetry=args.show_telemetry, as_json=args.json, console=console, intended=intended)
    link, why = connect(args.port, args.serial, args.baud, printer.frame)
    if link is None:
        _say(why)
        return EXIT_NO_BOARD
    if console:
        con = Console(args, printer)
        con.link = link
        return con.run(sys.stdin.isatty())
    try:
        return run_commands(link, printer, args.commands, args.timeout, args.restart_timeout, args.keep_going)
    except Lost as e:
        _say("lost %s: %s (unplugged?)" % (link.port, e))
        return EXIT_NO_BOARD
    finally:
        link.close()


def register(sub):
    p = sub.add_parser("cmd", help="send commands to a board and print the replies (no command: a console)",
                       description="Send each COMMAND line to the board and print its reply; exit 0 if every "
                       "reply was ok, 1 on an err, 3 when no reply came in time, 4 when there is no board. "
                       "`restart` soft-resets the board so its firmware runs again (after mpremote left it "
                       "at the REPL). With no COMMAND: an interactive console with history.")
    p.add_argument("commands", nargs="*", metavar="COMMAND", help='a command line, e.g. "set cell_ov_mv 3650"')
    p.add_argument("--port", default="auto", help="serial port or pyserial URL, or 'auto' (default)")
    p.add_argument("--serial", default=None, help="board serial number / uid (with --port auto)")
    p.add_argument("--baud", type=COUNT, default=115200, help="baud rate (USB CDC ignores it; default 115200)")
    p.add_argument("--timeout", type=POSITIVE, default=5.0, help="seconds to wait for each reply (default 5)")
    p.add_argument("--restart-timeout", type=POSITIVE, default=20.0,
                   help="seconds `restart` waits for each step (REPL, soft reboot, hdr; default 20)")
    p.add_argument("-k", "--keep-going", action="store_true", help="send the remaining commands after an err")
    p.add_argument("--show-telemetry", action="store_true", help="also print rep/cell lines")
    p.add_argument("--json", action="store_true", help="print each frame as one JSON object per line")
    p.add_argument("--history", default=default_history(), help="console history file (default %(default)s)")
    p.add_argument("--board-file", default=None, metavar="JSON",
                   help="the board's file: `afe` shows what it asks for beside what the chip holds")
    p.set_defaults(func=main)
    return p
