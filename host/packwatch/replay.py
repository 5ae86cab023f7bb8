"""`packwatch replay`: re-decode a raw capture (from `packwatch log`) into a CSV log, through the
same decoder and row builder as the live logger."""
import contextlib
import os
import sys

from .files import atomic_output, check_output
from .logcsv import LogWriter, LOGGER_COLS
from .session import Session


def iter_capture(path, batch=2000):
    """Yield (host_time, [line bytes, ...]) from a raw capture; logger notes ('!…') are skipped,
    a line without a readable timestamp keeps the previous one."""
    t = 0.0
    group, gt = [], None
    with open(path, "rb") as f:
        for raw in f:
            raw = raw.rstrip(b"\n")
            sp = raw.find(b" ")
            try:
                t = float(raw[:sp]) if sp > 0 else float(raw)
                line = raw[sp + 1:] if sp > 0 else b""
            except ValueError:
                line = raw
            if line.startswith(b"!"):
                continue
            if gt is not None and (t != gt or len(group) >= batch):
                yield gt, group
                group = []
            gt = t
            group.append(line)
    if group:
        yield gt, group


def replay(capture, out_csv):
    """Decode ``capture`` into ``out_csv`` (and ``<out>-2.csv``… when the board's shape changes), each
    replaced only once complete; an output that is the capture is refused. Returns the Session."""
    check_output(out_csv, [capture])
    outputs = []
    with contextlib.ExitStack() as files:
        def open_writer(n_cells, n_temps, meta):
            path = out_csv if not outputs else "%s-%d%s" % (os.path.splitext(out_csv)[0], len(outputs) + 1,
                                                            os.path.splitext(out_csv)[1] or ".csv")
            tmp = files.enter_context(atomic_output(path, [capture]))
            outputs.append(path)
            return LogWriter(tmp, n_cells, n_temps, LOGGER_COLS, meta=dict(meta, source=os.path.basename(capture)))

        sess = Session(open_writer)
        try:
            for t, lines in iter_capture(capture):
                sess.lines(t, lines)
                if sess.fmt_error:
                    raise ValueError("%s: %s" % (capture, sess.fmt_error))
        finally:
            sess.close()  # writers closed before their files are renamed into place (or removed)
    sess.outputs = outputs
    return sess


def main(args):
    try:
        s = replay(args.capture, args.output)
    except (OSError, ValueError) as e:
        print("packwatch replay: %s" % e, file=sys.stderr)
        return 2
    print("%d samples, %d crc errors, %d malformed, %d gaps, %d reboots -> %s" % (
        s.samples, s.dec.crc_errors, s.dec.malformed + s.dec.oversize, s.gaps, s.reboots,
        ", ".join(s.outputs) or "(no reports in %s: is it a .raw capture written by `packwatch log`?)"
        % args.capture), file=sys.stderr)
    return 0 if s.outputs else 1


def register(sub):
    p = sub.add_parser("replay", help="re-decode a raw capture into a CSV log")
    p.add_argument("capture", help="a .raw capture written by `packwatch log`")
    p.add_argument("-o", "--output", required=True, help="CSV log to write")
    p.set_defaults(func=main)
    return p
