"""Cost benchmark runner: `python -m bench.soc.cost` runs bench/soc/cost_mp.py under the real
MicroPython unix port and writes bench/results/soc_cost.md."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main():
    exe = Path(sys.executable).parent / "micropython"
    env = dict(os.environ, MICROPYPATH=os.pathsep.join([str(ROOT / "firmware"), str(ROOT)]))
    out = subprocess.run([str(exe), "-X", "heapsize=256K", str(ROOT / "bench/soc/cost_mp.py")],
                         capture_output=True, text=True, cwd=str(ROOT), env=env, timeout=600)
    if out.returncode:
        sys.exit(out.stdout + out.stderr)
    rows = [ln.split()[1:] for ln in out.stdout.splitlines() if ln.startswith("COST")]
    ver = subprocess.run([str(exe), "-c", "import sys; print(sys.version)"], capture_output=True, text=True).stdout.strip()
    lines = ["### SoC estimator cost (MicroPython unix port: %s)" % ver, "",
             "| estimator | µs per update | heap bytes per update |", "|---|---:|---:|"]
    lines += ["| %s | %s | %s |" % tuple(r) for r in rows]
    lines += ["", "Reproduce: `.venv/bin/python -m bench.soc.cost` (heap = `micropython.mem_total()` "
              "delta, harness subtracted). Host timings: compare the ratio, not the µs, with an RP2040.", ""]
    text = "\n".join(lines)
    (ROOT / "bench/results").mkdir(exist_ok=True)
    (ROOT / "bench/results/soc_cost.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
