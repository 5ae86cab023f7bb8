"""`packwatch demo`: the whole path on a simulated pack — virtual board → serial port → log → plot.

Runs a scenario (default "demo": 3 h of a 16S LFP pack, inverter loads and kettles, then solar and mains
charging) in lockstep, as fast as the machine allows, logs it through the virtual board's pty with
the same Logger as `packwatch log`, and draws the figure with `packwatch plot`.
"""
import os
import sys
import threading
import time

from .cli import POSITIVE, SEED
from .sim import add_scenario_arg


def register(sub):
    p = sub.add_parser("demo", help="run a simulated pack on the virtual board, log it and plot it")
    p.add_argument("--out", default="out/demo", help="output directory (default: out/demo)")
    add_scenario_arg(p)
    p.add_argument("--hours", type=POSITIVE, default=None, metavar="H",
                   help="stop after H hours of virtual time (default: the scenario's length)")
    p.add_argument("--seed", type=SEED, default=1, metavar="N",
                   help="seed of the simulated pack and sensor noise (default 1): the same seed gives the same run")
    p.set_defaults(func=run)


def demo(out_dir, scenario="demo", hours=None, seed=1, log=print):
    """Writes demo.csv (log schema), demo.raw (the capture), demo_truth.csv (the plant's truth,
    packwatch.truth) and demo.png (with the plant's SoC over the board's) in out_dir.
    Returns (csv_path, png_path, logger, figure): the figure is the matplotlib Figure saved as the PNG."""
    from packwatch.vboard import VirtualBoard
    from packwatch.logger import Logger
    from packwatch.plot import figure
    from packwatch.files import atomic_output
    from packwatch.logcsv import read_log
    from packwatch.truth import EVERY_MS, TruthWriter, soc_agreement

    os.makedirs(out_dir, exist_ok=True)
    t0 = time.monotonic()
    vb = VirtualBoard(scenario, seed=seed, truth_every_ms=EVERY_MS)
    vb.hold_at_ms = 1000  # boot, then wait for the logger: in lockstep the pack would not wait for it
    # the pack as the virtual board runs it: the scenario's chemistry on the sim board adjusted to it
    pack = "%dS %s" % (vb.board["cells"], vb.chemistry.upper())
    with vb:
        end_ms = int(hours * 3600e3) if hours else vb.scenario.duration_ms
        lg = Logger(vb.port, out_dir, serial=vb.serial, daily=False)
        th = threading.Thread(target=lg.run, name="logger", daemon=True)
        th.start()
        t_wait = time.monotonic() + 30
        while not vb.host_connected() and time.monotonic() < t_wait:
            time.sleep(0.01)
        vb.hold_at_ms = end_ms  # and stop exactly there
        log("virtual board %s on %s: scenario %r, %s, %.2f h of pack time"
            % (vb.serial, vb.port, vb.scenario.name, pack, end_ms / 3600e3))
        shown = 0
        while vb.t_ms < end_ms - 100:
            if vb.error:
                raise RuntimeError("virtual board failed: %r" % vb.error)
            if not th.is_alive():
                raise RuntimeError("the logger stopped early")
            if vb.t_ms - shown >= 1800e3:
                shown = vb.t_ms
                log("  %4.1f h simulated, %5.0f s wall, %d reports logged"
                    % (vb.t_ms / 3600e3, time.monotonic() - t0, lg.session.samples if lg.session else 0))
            time.sleep(0.2)
        # the board is held at end_ms: let the logger drain what is still in the pipes
        t_drain = time.monotonic() + 60
        while time.monotonic() < t_drain:
            last = lg.session.last if lg.session else None
            if last and last.get("ms", 0) >= end_ms - 2000:
                break
            time.sleep(0.1)
        time.sleep(0.3)
        lg.stop = True
        th.join(timeout=10)
        truth_path = os.path.join(out_dir, "demo_truth.csv")
        with atomic_output(truth_path) as tmp:
            tw = TruthWriter(tmp, vb)
            tw.drain(vb)
            tw.close()
    csvs = [p for p in lg.files.created if p.endswith(".csv") and os.path.exists(p)]
    if not csvs:
        raise RuntimeError("no CSV was written")
    csv_path = os.path.join(out_dir, "demo.csv")  # fixed names, so a re-run replaces the last one
    os.replace(max(csvs, key=os.path.getsize), csv_path)
    raws = [p for p in lg.files.created if p.endswith(".raw") and os.path.exists(p)]
    if raws:
        os.replace(raws[0], os.path.join(out_dir, "demo.raw"))
    png = os.path.join(out_dir, "demo.png")
    fig = figure(csv_path, title="packwatch demo: scenario %r, %s on the virtual board" % (scenario, pack),
                 truth=truth_path)
    fig.savefig(png, dpi=110)
    s = lg.session
    log("logged %d reports: crc errors %d, malformed %d, gaps %d, reboots %d"
        % (s.samples, s.dec.crc_errors, s.dec.malformed, s.gaps, s.reboots))
    a = soc_agreement(read_log(csv_path, ("dev_ms", "soc_pct", "soc_sigma_pct")),
                      read_log(truth_path, ("dev_ms", "boot", "soc_pct")))
    log("SoC against the plant's truth (%d reports): RMSE %.1f, max %.1f points; truth inside the reported "
        "±3σ in %.0f %% of them" % (a["n"], a["rmse"], a["max"], 100 * a["in_3sigma"]))
    return csv_path, png, lg, fig


def run(args):
    t0 = time.monotonic()
    csv_path, png, _, _ = demo(args.out, args.scenario, args.hours, args.seed,
                            log=lambda s: print(s, file=sys.stderr, flush=True))
    print("CSV: %s" % os.path.abspath(csv_path))
    print("PNG: %s" % os.path.abspath(png))
    print("truth: %s" % os.path.abspath(os.path.join(args.out, "demo_truth.csv")))
    print("done in %.0f s" % (time.monotonic() - t0), file=sys.stderr)
    return 0
