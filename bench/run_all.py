"""`make bench`: every benchmark that needs no PyBaMM, then docs/benchmarks.md from bench/results/.

Each benchmark runs in its own process and writes bench/results/<name>.md; this script only runs them
and stitches the results (plus the SoC accuracy results of `make bench-soc`, if present) into
docs/benchmarks.md with the commands that reproduce them - unless that file was edited by hand since the
last stitch (bench/results/benchmarks.sha256), which is then kept and the stitch written beside it.
Timings never live in tests.
"""
import hashlib
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

# (result file, command, what it shows)
BENCHES = [
    ("vboard.md", [sys.executable, "bench/hil/bench_vboard.py"], "virtual board: a simulated 24 h day through the full board"),
    ("vboard_parts.md", [sys.executable, "bench/hil/profile_fw.py"], "virtual board: firmware time per sample, by part"),
    ("plant.md", [sys.executable, "bench/hil/bench_plant.py"], "pack plant step cost"),
    ("soc_cost.md", [sys.executable, "-m", "bench.soc.cost"], "SoC estimator cost under real MicroPython"),
    ("host.md", [sys.executable, "bench/host/bench_host.py"], "host tools: decode, log, plot"),
    ("ntc.md", [sys.executable, "bench/hil/bench_ntc.py"], "temperature error vs the NTC's published table, both ports"),
    ("protection.md", [sys.executable, "bench/hil/bench_protection.py"], "protections: fault onset to current interruption in plant time"),
    ("counting.md", [sys.executable, "bench/hil/bench_counting.py"], "coulomb counting under inverter ripple: samples vs the hardware accumulators"),
    ("rp2040.md", [sys.executable, "bench/rp2040/bench_rp2040.py"], "the firmware on the emulated RP2040 (skips without it)"),
]
ORDER = ["vboard.md", "vboard_issue12.md", "vboard_parts.md", "rp2040.md", "host.md", "ntc.md", "counting.md", "soc_cost.md", "soc_accuracy.md", "soc_locked.md", "protection.md", "balancing.md", "balancing_bal_adjacent_1_bal_dsg_1_bal_max_cells_8.md", "balancing_seeds_bal_adjacent_1_bal_dsg_1_bal_max_cells_8.md", "plant.md"]
# balancing*.md: `make bench-balancing` (bench/hil/bench_balancing.py, ~1 min per simulated day and pack: not in
# `make bench`): the defaults on one pack; --set bal_max_cells=8 --set bal_dsg=1 --set bal_adjacent=1 on one
# pack (with its plot) and, with --seeds 1-5, on five


def run(only=None):
    for name, cmd, what in BENCHES:
        if only and name.split(".")[0] not in only:
            continue
        print("== %s: %s" % (what, " ".join(cmd[1:])), flush=True)
        t = time.monotonic()
        subprocess.run(cmd, cwd=ROOT, check=True)
        print("   (%.0f s)" % (time.monotonic() - t), flush=True)


# the sha256 of the docs/benchmarks.md that stitch() last wrote: a file that differs from it was edited by
# hand (a session's notes, before/after tables that live in no results file) and is not overwritten
STAMP = RESULTS / "benchmarks.sha256"
STITCHED = RESULTS / "benchmarks_stitched.md.tmp"  # where the stitch goes instead (.gitignore: *.tmp)


def stitch(docs=None):
    docs = Path(docs) if docs else ROOT / "docs" / "benchmarks.md"
    text = _render()
    old = docs.read_bytes() if docs.exists() else None
    stamp = STAMP.read_text().strip() if STAMP.exists() else None
    if old is not None and hashlib.sha256(old).hexdigest() != stamp:
        STITCHED.write_text(text)
        print("%s has edits that are in no bench/results file: not overwritten; the stitched results are in"
              " %s (merge them by hand, or delete %s to let stitch write it)" % (_rel(docs), _rel(STITCHED), docs.name))
        return False
    data = text.encode()
    docs.write_bytes(data)
    STAMP.write_text(hashlib.sha256(data).hexdigest() + "\n")
    print("wrote %s" % _rel(docs))
    return True


def _rel(path):
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def _render():
    parts = ["# Benchmarks", "",
             "Measured on the development machine (2 cores, Python 3.11, MicroPython 1.29 unix port). Reproduce "
             "everything with `make bench` (and `make bench-soc` for the SoC accuracy benchmark, which needs "
             "PyBaMM); each section names its own command. Host timings of MicroPython code are for comparing "
             "alternatives in the same run, not absolute RP2040/ESP32 figures.", ""]
    for name in ORDER:
        f = RESULTS / name
        if f.exists():
            text = f.read_text().strip().splitlines()
            if text and not text[0].startswith("# "):
                parts += ["## " + name[:-3], ""]
            # each file's headings go one level down, under ours
            parts += ["#" + ln if ln.startswith("#") else ln for ln in text] + [""]
    return "\n".join(parts)


if __name__ == "__main__":
    run(set(sys.argv[1:]) or None)
    stitch()
