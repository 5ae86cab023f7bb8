"""A simulated day through the full virtual board: the firmware on MicroPython, the chips, the plant,
the pty relay and a host reading every frame with pyserial.

Run: .venv/bin/python bench/hil/bench_vboard.py               (24 h of scenario "day", 10 Hz sampling)
     .venv/bin/python bench/hil/bench_vboard.py --hours 1     (a shorter run)
Target (issue): 24 h in under 2 minutes of wall time on 2 cores (>= 720x real time).

The host decodes every line (packwatch.protocol.Decoder, the logger's decoder) and checks that every
report arrived: one `rep` per virtual second, sequence numbers without gaps, no CRC errors. The
firmware's live heap (`mem` command) is read after boot and at the end, to show it does not grow.
Writes bench/results/vboard.md unless --no-write.
"""
import argparse
import os
import platform
import resource
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "host"))

import serial  # noqa: E402

from packwatch.vboard import VirtualBoard  # noqa: E402
from packwatch.protocol import Decoder  # noqa: E402


def proc_cpu_s(pid):
    """CPU seconds (user + system) of another process, from /proc."""
    try:
        f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return float("nan")


def self_cpu_s():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Host:
    """Reads the serial port in its own thread, as a logger would."""

    def __init__(self, port):
        self.ser = serial.serial_for_url(port, timeout=0.05)
        self.dec = Decoder()
        self.lock = threading.Lock()
        self.frames = 0
        self.reps = []  # (ms, seq) of every rep
        self.seqs = []  # seq of every frame that has one, in arrival order
        self.mem = []
        self.hdrs = 0
        self.bytes = 0
        self.stop = False
        self.thread = threading.Thread(target=self.run, name="host", daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop:
            data = self.ser.read(65536)
            if not data:
                continue
            self.bytes += len(data)
            for topic, f in self.dec.feed(data):
                with self.lock:
                    self.frames += 1
                    if "seq" in f:
                        self.seqs.append(f["seq"])
                    if topic == "rep":
                        self.reps.append((f["ms"], f["seq"]))
                    elif topic == "hdr":
                        self.hdrs += 1
                    elif topic == "ok" and f.get("cmd") == "mem":
                        self.mem.append(f)

    def send(self, line):
        self.ser.write(line.encode() + b"\n")

    def close(self):
        self.stop = True
        self.thread.join(timeout=5)
        self.ser.close()


def wait(pred, timeout, vb, what):
    end = time.monotonic() + timeout
    while not pred():
        if vb.error:
            raise RuntimeError("virtual board failed: %r" % vb.error)
        if time.monotonic() > end:
            raise TimeoutError("no %s within %.0f s (virtual t=%d ms); firmware said:\n%s"
                               % (what, timeout, vb.t_ms, vb.console[-1500:].decode("utf-8", "replace")))
        time.sleep(0.01)


def mem_reading(host, vb):
    n = len(host.mem)
    host.send("mem")
    wait(lambda: len(host.mem) > n, 30, vb, "reply to mem")
    return host.mem[n]


def run(hours=24.0, scenario="day", seed=1, log=print, heap="96K"):
    end_ms = int(round(hours * 3600e3))
    wall0 = time.monotonic()
    vb = VirtualBoard(scenario, seed=seed, heap=heap)
    vb.hold_at_ms = end_ms  # the board freezes there (its last sleep is never answered)
    vb.start()
    host = Host(vb.port)
    try:
        wait(lambda: host.reps and host.reps[-1][0] >= 1000, 60, vb, "first reports")
        mem0 = mem_reading(host, vb)  # after boot (the board keeps running meanwhile)
        # the measured run: from here to end_ms at full speed, frozen at end_ms
        t_start = vb.t_ms
        cpu_fw0, cpu_rn0 = proc_cpu_s(vb._proc.pid), self_cpu_s()
        w0 = time.monotonic()
        shown = t_start
        while vb.t_ms + 100 <= end_ms:  # the last step at or before end_ms (the next one is held)
            if vb.error:
                raise RuntimeError("virtual board failed: %r" % vb.error)
            if vb.t_ms - shown >= 3600e3:
                shown = vb.t_ms
                el = time.monotonic() - w0
                log("  %5.1f h simulated, %6.1f s wall, %6.0fx" % (vb.t_ms / 3600e3, el,
                                                                   (vb.t_ms - t_start) / 1000 / max(el, 1e-9)))
            time.sleep(0.01)
        wall = time.monotonic() - w0
        cpu_fw, cpu_rn = proc_cpu_s(vb._proc.pid) - cpu_fw0, self_cpu_s() - cpu_rn0
        wait(lambda: host.reps and host.reps[-1][0] > end_ms - 1000, 60, vb, "the last report")
        vb.hold_at_ms = None
        mem1 = mem_reading(host, vb)
        total_wall = time.monotonic() - wall0
        boots = vb.boots
        hits, misses = getattr(vb, "spec_hits", 0), getattr(vb, "spec_misses", 0)
    finally:
        host.close()
        vb.stop()
    with host.lock:
        reps = [r for r in host.reps if 0 < r[0] <= end_ms]
        seqs = list(host.seqs)
    gaps = sum(1 for a, b in zip(seqs, seqs[1:]) if b != a + 1)
    sim_ms = end_ms - t_start
    steps = sim_ms / 100.0
    res = {
        "scenario": scenario, "hours": hours, "seed": seed,
        "wall_s": wall, "total_wall_s": total_wall, "speed": sim_ms / 1000.0 / wall,
        "day_wall_s": 86400.0 / (sim_ms / 1000.0 / wall),
        "samples_per_s": steps / wall, "us_per_step": wall * 1e6 / steps,
        "fw_cpu_us": cpu_fw * 1e6 / steps, "runner_cpu_us": cpu_rn * 1e6 / steps,
        "reps": len(reps), "reps_expected": int(end_ms // 1000), "seq_gaps": gaps,
        "frames": host.frames, "crc_errors": host.dec.crc_errors, "malformed": host.dec.malformed,
        "boots": boots, "mem0": mem0, "mem1": mem1, "spec_hits": hits, "spec_misses": misses,
    }
    res["ok"] = (res["reps"] == res["reps_expected"] and not gaps and not host.dec.errors and boots == 1)
    return res


ANALYSIS = (Path(__file__).with_name("vboard_notes.md")).read_text() if \
    Path(__file__).with_name("vboard_notes.md").exists() else ""


def report_md(r, argv):
    cmd = ".venv/bin/python bench/hil/bench_vboard.py" + ("" if not argv else " " + " ".join(argv))
    m0, m1 = r["mem0"], r["mem1"]
    lines = [
        "# Virtual board benchmark",
        "",
        "command: `%s` (%s, %d cores, Python %s, MicroPython %s)"
        % (cmd, time.strftime("%Y-%m-%d"), os.cpu_count(), platform.python_version(), "1.29 unix port"),
        "",
        "Scenario `%s` (16S LFP, 10 Hz sampling, 1 Hz reports), %.3g h of pack time through the full virtual "
        "board: firmware (.mpy) on MicroPython, simulated chips, plant, pty relay, and a host reading "
        "the serial port with pyserial and decoding every frame." % (r["scenario"], r["hours"]),
        "",
        "| | value |",
        "|---|---|",
        "| wall time (%.3g h) | %.1f s |" % (r["hours"], r["wall_s"]),
        "| speed factor (virtual / wall) | **%.0fx** |" % r["speed"],
        "| 24 h would take | **%.1f s** (target < 120 s) |" % r["day_wall_s"],
        "| firmware samples per second | %.0f |" % r["samples_per_s"],
        "| wall per 100 ms step | %.1f us (target < 139 us) |" % r["us_per_step"],
        "| CPU per step: MicroPython process | %.1f us |" % r["fw_cpu_us"],
        "| CPU per step: runner + host (this process) | %.1f us |" % r["runner_cpu_us"],
        "| speculative plant steps used / undone | %d / %d |" % (r["spec_hits"], r["spec_misses"]),
        "| `rep` frames received / expected | %d / %d |" % (r["reps"], r["reps_expected"]),
        "| sequence gaps, CRC errors, malformed | %d, %d, %d |" % (r["seq_gaps"], r["crc_errors"], r["malformed"]),
        "| firmware heap after boot (`mem`: alloc / free) | %d / %d bytes |" % (m0["alloc"], m0["free"]),
        "| firmware heap at the end (`mem`: alloc / free) | %d / %d bytes |" % (m1["alloc"], m1["free"]),
        "| all reports arrived, one boot | %s |" % ("yes" if r["ok"] else "NO"),
        "",
    ]
    return "\n".join(lines) + "\n" + ANALYSIS


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hours", type=float, default=24.0, help="virtual hours to run (default 24)")
    ap.add_argument("--scenario", default="day")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "vboard.md"))
    ap.add_argument("--no-write", action="store_true", help="print only")
    ap.add_argument("--heap", default="96K",
                    help="the firmware's heap (default 96K, a board's); only to compare builds that do not fit it")
    args = ap.parse_args(argv)
    if args.hours <= 0.001:
        ap.error("--hours must be > 0.001")
    print("scenario %s, %.3g h of pack time ..." % (args.scenario, args.hours))
    r = run(args.hours, args.scenario, args.seed, heap=args.heap)
    print("wall %.1f s  speed %.0fx  (24 h -> %.1f s)  %.0f samples/s  %.1f us/step" %
          (r["wall_s"], r["speed"], r["day_wall_s"], r["samples_per_s"], r["us_per_step"]))
    print("cpu/step: firmware %.1f us, runner+host %.1f us; speculation %d used / %d undone" %
          (r["fw_cpu_us"], r["runner_cpu_us"], r["spec_hits"], r["spec_misses"]))
    print("reports %d / %d, seq gaps %d, crc errors %d, malformed %d, boots %d" %
          (r["reps"], r["reps_expected"], r["seq_gaps"], r["crc_errors"], r["malformed"], r["boots"]))
    print("heap after boot %s, at the end %s" % (r["mem0"], r["mem1"]))
    if not args.no_write:
        cli = sys.argv[1:] if argv is None else list(argv)
        Path(args.out).write_text(report_md(r, [a for a in cli if not a.startswith("--out")]))
        print("wrote", args.out)
    return 0 if r["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
