"""T0: the layer contract (docs/architecture.md). The host (packwatch) may import the simulated
hardware (hil), which may import the firmware (pwfw), never the reverse; nothing imports bench.
import-linter checks the packages (`lint-imports`, [tool.importlinter] in pyproject.toml); tests/ is
not a package and the firmware's own imports are MicroPython modules, so those two are checked here
from the source with ast (every import statement, inside functions too)."""
import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT

# MicroPython's built-in and frozen library modules (docs.micropython.org, "MicroPython libraries")
MICROPYTHON_MODULES = {
    "array", "asyncio", "binascii", "builtins", "cmath", "collections", "deflate", "errno", "gc",
    "hashlib", "heapq", "io", "json", "math", "os", "platform", "random", "re", "select", "socket",
    "ssl", "struct", "sys", "time", "zlib", "_thread", "bluetooth", "btree", "cryptolib", "framebuf",
    "machine", "micropython", "neopixel", "network", "uctypes", "vfs", "rp2", "esp", "esp32", "typing",
}


def imported_modules(path):
    """Every absolute module name an import statement in the file names (relative ones excluded)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            out.append(node.module)
    return out


def lint_imports():
    exe = Path(sys.executable).parent / "lint-imports"
    found = str(exe) if exe.exists() else shutil.which("lint-imports")
    if not found:
        pytest.fail("lint-imports is missing: `make test` installs import-linter (dev extra)")
    return found


def run_lint(root):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(str(root / d) for d in ("", "host", "firmware")))
    return subprocess.run([lint_imports(), "--no-cache"], cwd=root, env=env, capture_output=True, text=True,
                          timeout=120)


def test_no_test_imports_bench():
    bad = ["%s: %s" % (p.relative_to(ROOT), m) for p in sorted((ROOT / "tests").rglob("*.py"))
           for m in imported_modules(p) if m == "bench" or m.startswith("bench.")]
    assert not bad, "tests import bench (benchmarks are a leaf; move shared code to hil/): %s" % bad


def test_firmware_imports_only_itself_and_micropython():
    # a simulator named by the firmware (once: `from hal_sim import Hal` on linux) is a top-level
    # module outside every package, invisible to import-linter: the board file names the HAL instead
    bad = []
    for p in sorted((ROOT / "firmware").rglob("*.py")):
        for m in imported_modules(p):
            top = m.split(".")[0]
            if top != "pwfw" and top not in MICROPYTHON_MODULES:
                bad.append("%s: %s" % (p.relative_to(ROOT), m))
    assert not bad, bad


def test_layer_contract_is_kept():
    r = run_lint(ROOT)
    assert r.returncode == 0, r.stdout + r.stderr


def _copy_tree(dst):
    skip = shutil.ignore_patterns("node_modules", "__pycache__", "cache", "results", "*.uf2", "*.bin")
    for d in ("hil", "bench", "host/packwatch", "firmware/pwfw"):
        shutil.copytree(ROOT / d, dst / d, ignore=skip)
    shutil.copyfile(ROOT / "pyproject.toml", dst / "pyproject.toml")


@pytest.mark.parametrize("where, line, broken", [
    # a lazy import inside a function, the kind that hid the old hil -> packwatch cycle
    ("hil/plant.py", "def _injected():\n    from packwatch import ports\n", "hil.plant -> packwatch.ports"),
    ("firmware/pwfw/boot.py", "def _injected():\n    import hil.vboard.hal_sim\n", "pwfw.boot -> hil.vboard.hal_sim"),
    ("hil/scenarios.py", "import bench.soc.profiles\n", "hil.scenarios -> bench.soc.profiles"),
])
def test_layer_contract_catches_a_reverse_import(tmp_path, where, line, broken):
    _copy_tree(tmp_path)
    assert run_lint(tmp_path).returncode == 0  # the copy alone keeps the contract
    f = tmp_path / where
    f.write_text(f.read_text() + "\n\n" + line)
    r = run_lint(tmp_path)
    assert r.returncode != 0, r.stdout
    assert broken in r.stdout, r.stdout
