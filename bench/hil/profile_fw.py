"""Where the firmware's time goes per sample, under real MicroPython (the virtual board's critical path).

Run: .venv/bin/python bench/hil/profile_fw.py     (writes bench/results/vboard_parts.md; --no-write)

The firmware is staged exactly as the virtual board installs it (.mpy from mpy-cross for the unix
port) and runs `App.step()` on the simulated chips, with the runner's pipe replaced by one canned step
reply (16 cells, 7 temperatures), so only in-process work is timed: no system calls, no second
process. Each part is timed in place by taking it out (replacing it by a no-op) and measuring what the
step loses; the best of several batches is kept. Host µs are for comparing parts, not RP2040 figures.
"""
import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "host"))

from packwatch.staging import micropython_exe  # noqa: E402
from packwatch.vboard import board_file_for, install_firmware  # noqa: E402

SCRIPT = r"""
import gc, json, struct, time
from array import array
import hal_sim

class Hal(hal_sim.Hal):
    # the simulated HAL without the runner: every sleep applies the same canned step reply
    def __init__(self, board):
        self.board = board
        self._cause = "power"; self._uid = "prof"; self._t = 0; self._relay = 1; self.sim_heap = 0
        self._pipe()  # the per-step state _apply uses (the request buffers stay unused)
        self._chips(board, 1)
        self._out = open("/dev/null", "wb")
        # t_ms, i_ma, i_avg_ma (the same: one current over the step), stack, flags, cells, temps
        body = struct.pack("<IiiIHBB", 0, -20000, -20000, 528000, 0, 16, 7)
        body += struct.pack("<16H7h", *([32800 + 7 * k for k in range(16)] + [250, 251, 252, 250, 250, 250, 300]))
        body += b"\0"
        self.pkt = struct.pack("<H", len(body)) + body
    def _step(self, ms):
        self._t += ms
        self._dt_us = ms * 1000  # the chip's protections run over the step (advance)
        self._apply(self.pkt)
    def serial_read(self):
        return -1

from pwfw.app import App
hal = Hal(json.load(open("board.json")))
app = App(hal)
app.store.due = lambda now, soc: False  # no flash writes inside the timed batches
N = 3000

def per_step():
    best = 1e9
    for _ in range(5):
        for i in range(100):
            app.step()
        t = time.ticks_us()
        for i in range(N):
            app.step()
        best = min(best, time.ticks_diff(time.ticks_us(), t) / N)
    return best

class NoEst:
    soc_pm = 500; sigma_pm = 10; cap_mah = 100000
    def __init__(self, est):
        self.cell_soc_pm = est.cell_soc_pm
    def update(self, dt_ms, i_ma, cells_mv, t_dc, i_avg_ma):  # exact arity: *args would allocate a tuple
        pass

class NoProt:
    alarm = 0
    i_sat = 0
    def fets_ok(self):
        return 3
    def check(self, now, cells, stack, i_ma, temps):
        pass
    def pop_event(self):
        return None
    def relay_ok(self):
        return True

rows = []
t = per_step()
rows.append(("whole sample (App.step)", t))
steps = [
    ("estimator (pwfw.soc update)", lambda: setattr(app, "est", NoEst(app.est))),
    ("protections (pwfw.protect check, events, relay)", lambda: setattr(app, "prot", NoProt())),
    ("chips: step reply into the simulated registers (hal_sim._apply)", lambda: setattr(hal, "_apply", lambda p: None)),
    ("AFE block read: cells, stack, CC2 (driver + simulated bus)", lambda: setattr(app.pack, "_read_afe", lambda: True)),
    ("current scaling (CC2 -> calibrated mA)", lambda: setattr(app.pack, "_read_current", lambda ok: None)),
    ("temperatures, 1 Hz: 3 NTC + 2 TS (per sample)", lambda: setattr(app.pack, "_read_temps", lambda: None)),
    ("reports: `rep` each 10th sample, `cell` each 100th (per sample)", lambda: (setattr(app, "report", lambda now: None), setattr(app, "cell_report", lambda now: None))),
    ("the rest of App.sample", lambda: setattr(app, "sample", lambda now: None)),
]
for name, cut in steps:
    cut()
    t2 = per_step()
    rows.append((name, t - t2))
    t = t2
rows.append(("the rest of App.step (command poll, scheduling)", t))
gc.collect()
print(json.dumps(rows))
"""


def measure():
    board = board_file_for("lfp")
    with tempfile.TemporaryDirectory() as d:
        install_firmware(d, board)
        env = {"MICROPYPATH": ":".join(["lib", str(ROOT / "hil" / "vboard"), str(ROOT)]), "PATH": "/usr/bin:/bin"}
        out = subprocess.run([micropython_exe(), "-X", "heapsize=256K", "-c", SCRIPT], cwd=d, env=env,
                             capture_output=True, text=True, timeout=600)
        if out.returncode:
            raise SystemExit("profile failed:\n" + out.stdout + out.stderr)
        return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    rows = measure()
    md = ["### Firmware time per sample, by part (in-process, MicroPython unix port)", "",
          "command: `.venv/bin/python bench/hil/profile_fw.py` (each part taken out in turn; best of 5 "
          "batches of 3000 samples; no system calls: the runner's pipe is replaced by a canned reply)", "",
          "| part | µs per sample |", "|---|---:|"]
    md += ["| %s | %.1f |" % (name, us) for name, us in rows]
    for name, us in rows:
        print("%-70s %6.1f" % (name, us))
    if not args.no_write:
        out = ROOT / "bench" / "results" / "vboard_parts.md"
        out.write_text("\n".join(md) + "\n")
        print("wrote", out)


if __name__ == "__main__":
    main()
