"""The firmware's costs on the emulated RP2040 (official MicroPython v1.28 RPI_PICO on rp2040js), beside
the MicroPython unix port in the same run.

Run: .venv/bin/python bench/rp2040/bench_rp2040.py   (writes bench/results/rp2040.md; --no-write)

Deploys the firmware to a fresh emulated Pico (`packwatch deploy`, about a minute), then runs
bench/rp2040/probe_mp.py on it over the raw REPL (mpremote; soft reset, main.py not run) and the same
script under the unix port (hal_sim's chips with a canned plant reply, as bench/hil/profile_fw.py).
RP2040 µs are emulated time (`time.ticks_us` follows the emulated 125 MHz clock): flash reads are
zero-wait and I2C transfers take no time there, so they are optimistic (see the notes it writes).
Needs node, `npm ci --prefix hil/rp2040`, and the UF2 + boot ROM (hil/rp2040/README.md).
"""
import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "host"))

from packwatch.vboard.rp2040 import Rp2040Board, Unavailable, unavailable  # noqa: E402
from packwatch.staging import micropython_exe  # noqa: E402
from packwatch.vboard import board_file_for, install_firmware  # noqa: E402

N = {"N_SOC": 200, "N_EKF": 10, "N_REP": 40, "N_STEP": 100}  # emulated: ~1.5 / 7.5 / 3 / 3.5 ms each;
# the EKF allocates ~9 KB per update on rp2 and the collector is off while timing: 10 fit its heap
NAMES = {"soc16": "pwfw.soc, 16-cell update", "ekf1": "naive float EKF, one cell (bench/soc/naive_ekf.py)",
         "app_heap": "App heap after `App(hal)` (hal, modules, buffers, state)",
         "report": "1 Hz report (`rep` frame, formatted + CRC + written)",
         "cell_report": "cell report (`cell` frame, every 10 s)"}


def script(n):
    ekf = (ROOT / "bench/soc/naive_ekf.py").read_text()
    head = "".join("%s = %d\n" % kv for kv in n.items())
    return head + ekf + "\n" + (ROOT / "bench/rp2040/probe_mp.py").read_text()


def rows(out):
    got = {}
    for ln in out.splitlines():
        if ln.startswith("ROW "):
            parts = ln[4:].rsplit(" ", 2)
            got[parts[0]] = (float(parts[1]), float(parts[2]))
    if "DONE" not in out:
        raise SystemExit("probe failed:\n" + out[-3000:])
    return got


def on_unix(n):
    with tempfile.TemporaryDirectory() as d:
        install_firmware(d, board_file_for("lfp"))
        (Path(d) / "probe.py").write_text(script(n))
        env = {"MICROPYPATH": ":".join(["", "lib", str(ROOT / "hil" / "vboard"), str(ROOT)]), "PATH": "/usr/bin:/bin"}
        out = subprocess.run([micropython_exe(), "-X", "heapsize=8M", "probe.py"], cwd=d, env=env,
                             capture_output=True, text=True, timeout=600)
        return rows(out.stdout + out.stderr)


def on_rp2040(n):
    with tempfile.TemporaryDirectory() as d:
        vb = Rp2040Board("demo", fs_dir=d).start()
        try:
            t = time.monotonic()
            vb.wait_t(500, timeout=60)
            subprocess.run([sys.executable, "-m", "packwatch", "deploy", "--port", vb.port, "--board", "pico",
                            "--no-restart"], check=True, cwd=str(ROOT), timeout=600, capture_output=True)
            print("  deployed in %.0f s" % (time.monotonic() - t), flush=True)
            p = Path(d) / "probe.py"
            p.write_text(script(n))
            out = subprocess.run([sys.executable, "-m", "mpremote", "connect", vb.port, "run", str(p)],
                                 capture_output=True, text=True, timeout=900, cwd=str(ROOT))
            return rows(out.stdout + out.stderr)
        finally:
            vb.stop()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    why = unavailable()
    if why:
        print("bench/rp2040: skipped: %s" % why)
        return 0
    try:
        rp = on_rp2040(N)
    except Unavailable as e:
        print("bench/rp2040: skipped: %s" % e)
        return 0
    ux = on_unix({k: v * 10 for k, v in N.items()})  # 10x the batches: the unix port is ~50x faster
    md = ["### The firmware on the emulated RP2040 (official MicroPython v1.28.0 RPI_PICO, rp2040js 1.4.1)", "",
          "command: `.venv/bin/python bench/rp2040/bench_rp2040.py` (deploys with `packwatch deploy`, runs "
          "`bench/rp2040/probe_mp.py` over the raw REPL; the unix column runs the same script under the unix "
          "port with hal_sim's chips and a canned plant reply, in the same run). µs per call "
          "(`time.ticks_us`; on the RP2040 emulated time at 125 MHz); heap bytes per call from `gc.mem_alloc()` "
          "deltas with the collector off. `App.step` rows: each part taken out in turn (as "
          "`bench/hil/profile_fw.py`), 100 samples back to back.", "",
          "| | RP2040 µs | RP2040 B | unix µs | unix B |", "|---|---:|---:|---:|---:|"]
    for key in rp:
        r = rp[key]
        u = ux.get(key, (float("nan"), float("nan")))
        name = NAMES.get(key, key)
        if key == "app_heap":
            md.append("| %s | | %d | | %d |" % (name, r[1], u[1]))
        else:
            md.append("| %s | %.1f | %.2f | %.1f | %.2f |" % (name, r[0], r[1], u[0], u[1]))
    md += ["", "What the emulation does not model (`../shared/rp2040/README.md`, `hil/rp2040/README.md`): "
           "flash is zero-wait (no XIP cache misses: the real chip runs code from QSPI flash through a 16 KB "
           "cache, and misses cost); I2C transfers take no emulated time (a 40-byte BQ76952 block read is "
           "~1 ms of bus time at 400 kHz on a board, docs/hardware.md); the emulator's instruction timing "
           "is approximate (its cycle counter charges 8 extra cycles per hardware divide; `ticks_us` follows its clock). So the "
           "RP2040 column is a lower bound for CPU time; compare ratios within one run.", ""]
    for ln in md[6:]:
        print(ln)
    if not args.no_write:
        out = ROOT / "bench" / "results" / "rp2040.md"
        out.write_text("\n".join(md) + "\n")
        print("wrote", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
