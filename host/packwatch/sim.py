"""`packwatch sim`: start a virtual board and print its serial port."""
import argparse
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
    p.add_argument("--duration", type=POSITIVE, default=None, metavar="S",
                   help="stop after S wall seconds (default: until Ctrl-C or SIGTERM)")
    p.set_defaults(func=run)


def run(args):
    from pathlib import Path

    try:
        from hil.vboard.runner import VirtualBoard
    except ImportError as e:  # Windows: no pseudo-terminals (termios), and no unix-port wheel
        raise OSError("the virtual board needs a POSIX system with the MicroPython unix port (Linux x86_64, "
                      "macOS arm64, or WSL on Windows): %s. deploy, log, live and the other commands work "
                      "here" % e) from None

    from .boardfile import load_board

    flashed = Path(args.fs) / "board.json" if args.fs else None
    if flashed is not None and flashed.exists():
        load_board(flashed)  # the board would start from it: refuse it here, naming the key
    vb = VirtualBoard(scenario=args.scenario, seed=args.seed, realtime=args.speed > 0, speed=args.speed or 1.0,
                      fs_dir=args.fs, link=args.link, chemistry=args.chemistry, board_file=args.board_file)
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    with vb:
        print(vb.port, flush=True)
        print("virtual board %s: scenario %s, chemistry %s, %s; Ctrl-C stops it"
              % (vb.serial, vb.scenario.name, vb.chemistry,
                 "real time x%g" % args.speed if args.speed > 0 else "as fast as possible"), file=sys.stderr)
        end = time.monotonic() + args.duration if args.duration else None
        try:
            while end is None or time.monotonic() < end:
                if vb.error:
                    raise RuntimeError("virtual board failed: %r" % vb.error)
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
    return 0
