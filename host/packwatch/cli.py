"""`packwatch` command line: one subcommand per module, each module registers its own parser."""
import argparse
import importlib
import sys

# module name in packwatch -> registers one or more subcommands
COMMANDS = ("ports", "logger", "plot", "live", "replay", "fit", "estimate", "sim", "deploy", "demo", "cmd")


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
