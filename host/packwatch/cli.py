"""`packwatch` command line: one subcommand per module, each module registers its own parser."""
import argparse
import importlib
import math
import sys

# module name in packwatch -> registers one or more subcommands
COMMANDS = ("ports", "logger", "plot", "live", "replay", "fit", "estimate", "sim", "deploy", "demo", "cmd")


def number(lo=None, hi=None, kind=float, lo_open=False):
    """An argparse ``type=``: a finite ``kind`` (float or int) within [lo, hi] (``lo_open``: > lo).
    A bad value gives argparse's one-line error ("argument --hours: must be > 0, got -1"), exit 2."""
    def parse(text):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError("%r is not %s" % (text, "a whole number" if kind is int
                                                                 else "a number")) from None
        if isinstance(v, float) and not math.isfinite(v):
            raise argparse.ArgumentTypeError("must be a finite number, got %s" % text)
        if lo is not None and (v < lo or (lo_open and v == lo)):
            raise argparse.ArgumentTypeError("must be %s %g, got %s" % (">" if lo_open else ">=", lo, text))
        if hi is not None and v > hi:
            raise argparse.ArgumentTypeError("must be <= %g, got %s" % (hi, text))
        return v
    return parse


POSITIVE = number(0, lo_open=True)           # durations, sizes, capacities
SEED = number(0, 2**32 - 1, kind=int)        # numpy and the virtual board's serial take 32 bits
COUNT = number(1, kind=int)                  # baud rates, worker counts


def build_parser():
    parser = argparse.ArgumentParser(
        prog="packwatch",
        description="Monitor a 51.2 V battery pack: log, plot and replay board telemetry, "
        "run the virtual board, deploy firmware, fit a cell model and estimate SoC.",
    )
    from packwatch import __version__

    parser.add_argument("--version", action="version", version="packwatch " + __version__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module("packwatch." + name).register(sub)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except (OSError, ValueError) as e:
        print("packwatch %s: error: %s" % (args.command, e), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
