"""`packwatch sim`: start a virtual board and print its serial port."""
import argparse
import contextlib
import signal
import sys
import time

from .cli import POSITIVE, SEED, number


def add_scenario_arg(p, default="demo"):
    """--scenario NAME, checked against hil.scenarios (shared with `packwatch demo`)."""
    from hil.scenarios import SCENARIOS
    p.add_argument("--scenario", default=default, choices=list(SCENARIOS), metavar="NAME",
                   help="scenario to run, one of: %s (default: %s; details in docs/hil.md)" % (
                       ", ".join(SCENARIOS), default))


def scenario_list():
    from hil.scenarios import SCENARIOS
    return "scenarios:\n" + "\n".join("  %-15s %5.1f h  %s" % (s.name, s.duration_ms / 3600e3, s.about)
                                       for s in SCENARIOS.values())


def register(sub):
    p = sub.add_parser("sim", help="run the firmware on a virtual board (simulated pack) behind a pseudo-terminal",
                       epilog=scenario_list(), formatter_class=argparse.RawDescriptionHelpFormatter)
    add_scenario_arg(p)
    p.add_argument("--target", choices=("unix", "rp2040"), default="unix",
                   help="unix: the firmware on the MicroPython unix port (default); rp2040: on official "
                   "MicroPython for the Pico on an emulated RP2040 (needs node, `npm ci --prefix hil/rp2040`, "
                   "--uf2 and --bootrom; about 0.2x real time; deploys the firmware on first start, ~1 min)")
    p.add_argument("--uf2", default=None, metavar="PATH",
                   help="rp2040: the MicroPython RPI_PICO UF2 (default: $PW_RP2040_UF2, else ../shared/rp2040/)")
    p.add_argument("--bootrom", default=None, metavar="PATH",
                   help="rp2040: the RP2040 boot ROM, 16 KiB (default: $PW_RP2040_BOOTROM, else ../shared/rp2040/)")
    p.add_argument("--speed", type=number(0), default=1.0, metavar="X",
                   help="virtual seconds per wall second (real-time mode, default 1); 0 = as fast as possible "
                   "(lockstep)")
    p.add_argument("--chemistry", choices=("lfp", "nmc"), default=None, help="override the scenario's chemistry")
    p.add_argument("--seed", type=SEED, default=1, metavar="N",
                   help="seed of the simulated pack and sensor noise (default 1): the same seed gives the same run; "
                   "the board's serial number is VB<N in 8 hex digits>")
    p.add_argument("--link", default=None, metavar="PATH",
                   help="make PATH a symlink to the serial port (it follows replugs)")
    p.add_argument("--fs", default=None, metavar="DIR", help="directory used as the board's flash (kept between runs)")
    p.add_argument("--board-file", default=None, metavar="FILE",
                   help="board description to flash a new board with (default: boards/sim.json); checked "
                   "against boards/board.schema.json, as a board.json already in --fs is")
    p.add_argument("--truth", default=None, metavar="FILE.csv",
                   help="write the plant's truth (time, current, cell voltages and SoC, temperatures, power path) "
                   "to FILE.csv in the log schema, a row per second of pack time; it appears complete when sim "
                   "stops (written beside it as .FILE.*.csv until then); compare it with the board's log by "
                   "boot + dev_ms (`packwatch plot LOG.csv --truth FILE.csv`)")
    p.add_argument("--duration", type=POSITIVE, default=None, metavar="S",
                   help="stop after S wall seconds (default: until Ctrl-C or SIGTERM)")
    p.set_defaults(func=run)


def run(args):
    from pathlib import Path

    try:
        from .vboard import VirtualBoard
    except ImportError as e:  # Windows: no pseudo-terminals (termios), and no unix-port wheel
        raise OSError("the virtual board needs a POSIX system with the MicroPython unix port (Linux x86_64, "
                      "macOS arm64, or WSL on Windows): %s. deploy, log, live and the other commands work "
                      "here" % e) from None

    from .boardfile import load_board

    kw = dict(scenario=args.scenario, seed=args.seed, realtime=args.speed > 0, speed=args.speed or 1.0,
              fs_dir=args.fs, link=args.link, chemistry=args.chemistry, board_file=args.board_file)
    if args.truth:
        from .files import check_output
        from .truth import EVERY_MS

        # refused before the board starts: never over an input (the board file, the link)
        check_output(args.truth, [args.board_file, args.link])
        kw["truth_every_ms"] = EVERY_MS
    if args.target == "rp2040":
        vb = _rp2040_board(args, kw)
        if vb is None:
            return 1
    else:
        flashed = Path(args.fs) / "board.json" if args.fs else None
        if flashed is not None and flashed.exists():
            load_board(flashed)  # the board would start from it: refuse it here, naming the key
        vb = VirtualBoard(**kw)
    signal.signal(signal.SIGTERM, _stop)  # as Ctrl-C: the truth file is completed
    with contextlib.ExitStack() as stack:
        stack.enter_context(vb)
        truth = _truth_writer(stack, args, vb) if args.truth else None
        _serve(args, vb, truth)
    return 0


def _stop(*_):
    raise KeyboardInterrupt


def _truth_writer(stack, args, vb):
    from .files import atomic_output
    from .truth import TruthWriter

    tmp = stack.enter_context(atomic_output(args.truth, [args.board_file, args.link]))
    tw = TruthWriter(tmp, vb)
    stack.callback(tw.close)  # runs before atomic_output renames the file into place
    stack.callback(tw.drain, vb)  # and the last rows before that
    return tw


def _serve(args, vb, truth):
    if args.target == "rp2040" and vb.fresh:
        _deploy_rp2040(vb)
    print(vb.port, flush=True)
    print("virtual board %s: scenario %s, chemistry %s, %s; Ctrl-C stops it"
          % (vb.serial, vb.scenario.name, vb.chemistry,
             "real time x%g" % args.speed if args.speed > 0 else "as fast as possible"), file=sys.stderr)
    end = time.monotonic() + args.duration if args.duration else None
    try:
        while end is None or time.monotonic() < end:
            if vb.error:
                raise RuntimeError("virtual board failed: %r" % vb.error)
            if truth is not None:
                truth.drain(vb)
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass


def _rp2040_board(args, kw):
    """An emulated RP2040 (hil/rp2040), or None after one line saying what is missing."""
    from .vboard.rp2040 import Rp2040Board, Unavailable

    try:
        vb = Rp2040Board(uf2=args.uf2, bootrom=args.bootrom, **kw)
    except Unavailable as e:
        print("packwatch sim: error: %s" % e, file=sys.stderr)
        return None
    vb.fresh = not vb.flash_path.exists()  # a new flash image: no firmware on it yet
    return vb


def _deploy_rp2040(vb):
    """First start of an emulated Pico: `packwatch deploy` its board (vb.board: the chemistry applied)."""
    import json

    from .deploy import deploy

    board_json = vb.fs_dir / "board.deploy.json"
    board_json.write_text(json.dumps(vb.board, indent=1))
    print("emulated RP2040 on %s: deploying the firmware (about a minute)" % vb.port, file=sys.stderr)
    vb.wait_t(500, timeout=30)  # USB CDC is up ~15 ms into emulated time; the REPL shortly after
    deploy(vb.port, board_json, log=lambda s: print("  " + s, file=sys.stderr))

