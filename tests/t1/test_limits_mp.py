"""T1: unlock, set past a hard limit, and `afe` under the real MicroPython with the App's 96 KB heap
(the rig of test_app_mp.py: the firmware as .mpy, the simulated chips beside it): each command answers
as specified, `afe` leaves the simulated part SEALED, and what `afe` loads is dropped again."""
import pytest

from tests.t1.test_app_mp import run

COMMANDS = """
import sys
for _ in range(20):
    app.step()
hal.keep_tx = True
hal.rx = bytearray(b"set cell_ov_mv 3600\\nunlock packwatch\\nset cell_ov_mv 3600\\nset cell_ov_mv 3800\\nafe\\n")
for _ in range(3):  # every line is taken at the first step; few reports kept in the rig's buffer
    app.step()
text = hal.tx  # no copy: the heap is tight
print("LOCKED", int(b'#err {"cmd":"set","error":"locked: cell_ov_mv' in text))
print("UNLOCK", int(b'#ok {"cmd":"unlock","for_ms":60000}' in text))
print("EVT", int(b'"name":"set","on":1,"val":3600,"idx":null,"setting":"cell_ov_mv","old":3650' in text))
print("HARD", int(b'"error":"cell_ov_mv=3800 beyond its hard limit' in text))
print("AFE", int(b'#afe {"cov_mv":3744,' in text), int(b'#ok {"cmd":"afe","sec":"sealed"' in text), "SEC", hal.bq.sec)
print("CFG", app.cfg.cell_ov_mv)
hal.keep_tx = False
text = None
hal.tx = bytearray()
h1 = h0 = 0
gc.collect()
h0 = gc.mem_alloc()
hal.rx = bytearray(b"afe\\nafe\\n")
for _ in range(20):
    app.step()
gc.collect()
h1 = gc.mem_alloc()
print("HELD", *[int("pwfw." + m in sys.modules) for m in ("afe_report", "afe_config", "bq76952_units")], "GREW", h1 - h0)
"""


def _vals(out):
    return {ln.split()[0]: ln.split()[1:] for ln in out.splitlines() if ln[:1].isupper() and " " in ln}


@pytest.fixture(scope="module")
def out(mp, tmp_path_factory):
    return run(mp, tmp_path_factory.mktemp("limits"), COMMANDS)


def test_unlock_and_hard_limits_in_real_micropython(out):
    v = _vals(out)
    assert v["LOCKED"] == ["1"] and v["UNLOCK"] == ["1"] and v["EVT"] == ["1"] and v["HARD"] == ["1"], out
    assert v["CFG"] == ["3600"], out
    assert v["AFE"][2:] == ["SEC", "3"], out  # whatever `afe` managed, the part is SEALED (Battery Status SEC 3)
    assert v["HELD"][:3] == ["0", "0", "0"], out  # afe_report and what it loaded not kept after the command


def test_afe_fits_in_the_firmware_heap(out):
    # after `set`/`unlock` have run: the names every module loaded so far interned stay (MicroPython
    # never frees a qstr), so `afe` must fit beside them (docs/architecture.md, Memory)
    v = _vals(out)
    assert v["AFE"] == ["1", "1", "SEC", "3"], out
    assert int(v["HELD"][4]) <= 256, out
