"""`packwatch live`: a terminal dashboard (plain ANSI) with per-cell bars, pack figures, SoC, alarms.
``--once`` waits for one report, prints one screen and exits; ``--duration S`` stops after S seconds.
When stdout is not a terminal, screens are printed one after another as plain text (no colours, no
screen clearing), separated by a blank line, so the output can be piped or logged."""
import sys
import time

from .api import Board
from .cli import POSITIVE
from .protocol import ALARM_BITS, FAULT_BITS, PROT_BITS, afe_fets, balancing_cells, bits_names, power_path

HDR_WAIT_S = 2.0  # --once: how long a report waits for the hdr (board, fw, uid) before it is shown
CHEM_RANGE_MV = {"lfp": (2500, 3650), "nmc": (3000, 4200)}


def _bar(frac, width):
    frac = 0.0 if frac != frac else max(0.0, min(1.0, frac))
    full = int(round(frac * width))
    return "#" * full + "." * (width - full)


def render(rep, hdr=None, width=80, color=False, stats=None):
    """One dashboard screen (str) from the last ``rep`` fields and the ``hdr`` fields."""
    hdr = hdr or {}
    lo, hi = CHEM_RANGE_MV.get(hdr.get("chem"), (2500, 4200))
    cells = [c for c in rep.get("cell_mv") or []]
    valid = [c for c in cells if isinstance(c, int)]
    out = []
    title = "packwatch live  %s %s fw %s  uid %s" % (hdr.get("board", "?"), hdr.get("chem", "?"),
                                                    hdr.get("fw", "?"), hdr.get("uid", "?"))
    out.append(title[:width])
    red, grn, off = ("\x1b[31m", "\x1b[32m", "\x1b[0m") if color else ("", "", "")
    vmax, vmin = (max(valid), min(valid)) if valid else (None, None)
    barw = max(10, width - 28)
    bal = balancing_cells(rep.get("bal"))
    for i, c in enumerate(cells):
        if not isinstance(c, int):
            out.append("cell%02d    ---- V  %s" % (i + 1, "?" * barw))
            continue
        mark = " max" if c == vmax else " min" if c == vmin else ""
        if bal and i + 1 in bal:
            mark += " bal"  # bleeding through its balancing resistor
        col = red if (c == vmax or c == vmin) and vmax - vmin > 30 else grn
        out.append("cell%02d  %6.3f V  %s%s%s%s" % (i + 1, c / 1000, col, _bar((c - lo) / (hi - lo), barw), off, mark))
    if valid:
        out.append("spread  %d mV   min %.3f V   max %.3f V" % (vmax - vmin, vmin / 1000, vmax / 1000))
    st, i_ma = rep.get("stack_mv"), rep.get("i_ma")
    pack = "pack    %s V   %s A" % ("%.2f" % (st / 1000) if isinstance(st, int) else "--",
                                    "%+.2f" % (i_ma / 1000) if isinstance(i_ma, int) else "--")
    if isinstance(st, int) and isinstance(i_ma, int):
        pack += "   %+.0f W  (%s)" % (st * i_ma / 1e6, "charging" if i_ma > 0 else "discharging" if i_ma < 0 else "rest")
    out.append(pack)
    temps = rep.get("t_dc") or []
    out.append("temps   " + "  ".join("%.1f C" % (t / 10) if isinstance(t, int) else "fault" for t in temps))
    soc, sig = rep.get("soc_pm"), rep.get("sig_pm")
    if isinstance(soc, int):
        out.append("SoC     %5.1f %% +/- %.1f  %s" % (soc / 10, (sig or 0) / 10, _bar(soc / 1000, max(10, width - 30))))
    al, fl = bits_names(rep.get("alarm"), ALARM_BITS), bits_names(rep.get("fault"), FAULT_BITS)
    path = power_path(rep.get("fet"))
    if path is not None:  # a firmware before `fet` does not say: show nothing rather than a guess
        out.append("power path: " + (path if rep["fet"] & 3 == 3 else red + path + off))
        afe = afe_fets(rep.get("fet"))
        pr = bits_names(rep.get("prot"), PROT_BITS) if "prot" in rep else None
        if pr is not None:  # a firmware before `prot` does not report the AFE's own state
            out.append("AFE     " + (afe if rep["fet"] & 12 == 12 else red + afe + off) + "   protections "
                       + (red + " ".join(pr) + off if pr else "none"))
    if bal is not None:  # a firmware before `bal` does not balance (or does not say)
        out.append("balance " + ("cells " + " ".join("%d" % k for k in bal) if bal else "none"))
    out.append("alarms  " + (red + " ".join(al) + off if al else "none"))
    out.append("faults  " + (red + " ".join(fl) + off if fl else "none"))
    out.append("seq %s  ms %s%s" % (rep.get("seq"), rep.get("ms"), "  " + stats if stats else ""))
    return "\n".join(line for line in out)


def live(port, once=False, out=sys.stdout, timeout=10.0, board=None, duration=None):
    """Show the board's reports until Ctrl-C, for ``duration`` seconds, or (``once``) until the first
    one. Returns 0, or 1 when no report came: within ``timeout`` s (``once``) or ``duration`` s."""
    b = board or Board(port, timeout=timeout)
    hdr = None
    tty = out.isatty()
    t0 = time.monotonic()
    stop_at = None if duration is None else t0 + duration
    shown = 0
    held = None
    try:
        b.ser.write(b"\ninfo\n")
        while True:
            now = time.monotonic()
            if once:
                wait = t0 + timeout - now
            elif stop_at is not None:
                wait = stop_at - now
            else:
                wait = 1e9
            if once and held is not None:
                wait = min(wait, t0 + HDR_WAIT_S - now)
            try:
                if wait <= 0:
                    raise TimeoutError
                topic, f = b.next(timeout=wait)
            except TimeoutError:
                if once and held is not None:  # no hdr came: show the report without its title
                    out.write(render(held, hdr, color=tty, stats="crc errors %d" % b.decoder.crc_errors) + "\n")
                    out.flush()
                    return 0
                if stop_at is not None and not once and shown:
                    return 0
                print("packwatch live: no report from %s within %.0f s"
                      % (port, timeout if once or stop_at is None else duration), file=sys.stderr)
                return 1
            if topic == "hdr" or (topic == "ok" and f.get("cmd") == "info"):
                hdr = f
                if once and held is not None:  # the report waiting for its title
                    topic, f = "rep", held
            if topic == "rep":
                if once and hdr is None and time.monotonic() - t0 < HDR_WAIT_S:
                    held = f  # a report can overtake the reply to `info`: wait a little for the title
                    continue
                stats = "crc errors %d" % b.decoder.crc_errors
                screen = render(f, hdr, color=tty, stats=stats)
                shown += 1
                if once:
                    out.write(screen + "\n")
                    out.flush()
                    return 0
                out.write(("\x1b[H\x1b[2J" if tty else "\n") + screen + "\n")
                out.flush()
    except KeyboardInterrupt:
        return 0
    finally:
        if board is None:
            b.close()


def main(args):
    return live(args.port, once=args.once, timeout=args.timeout, duration=args.duration)


def register(sub):
    p = sub.add_parser("live", help="terminal dashboard of a connected board")
    p.add_argument("--port", default="auto", help="serial port or pyserial URL, or 'auto'")
    p.add_argument("--once", action="store_true", help="print one screen and exit")
    p.add_argument("--duration", type=POSITIVE, default=None, metavar="S", help="stop after S seconds (exit 0)")
    p.add_argument("--timeout", type=POSITIVE, default=10.0, metavar="S",
                   help="give up after S seconds without a report (default 10)")
    p.set_defaults(func=_main_auto)
    return p


def _main_auto(args):
    if args.port == "auto":
        from .ports import find_port
        args.port = find_port()
        if args.port is None:
            print("packwatch live: no board found (see `packwatch ports`)", file=sys.stderr)
            return 1
    return main(args)
