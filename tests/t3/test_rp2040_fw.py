"""T3: the deployed firmware on the emulated RP2040 (official MicroPython, armv6m .mpy): a protection
end to end, a power cut in the middle of a flash write, and the App's heap on the 32-bit port.

The board boots from a copy of one deployed flash image (conftest.py `pico_flash`). Expected values
come from the plant's truth, the commands the test sends, and MicroPython's documented heap API.
"""
import subprocess
import sys
from pathlib import Path

import pytest

from hil import profiles as P
from hil.plant import CHEMISTRY
from packwatch.vboard.rp2040 import unavailable
from hil.scenarios import Scenario
from packwatch.protocol import ALARM_BITS, FAULT_BITS

_why = unavailable()
pytestmark = [pytest.mark.t3, pytest.mark.skipif(_why is not None, reason="emulated RP2040: %s" % _why)]
ROOT = Path(__file__).resolve().parents[2]
CELL_OV = 1 << ALARM_BITS.index("cell_ov")
STORE = 1 << FAULT_BITS.index("store")
LFP_MAX_MV = 3650  # LiFePO4 charge cut-off per cell (cell datasheets: 3.65 V), the pico board's default limit


def _near_full(high_cell, soc, t0_s):
    """A 50 A CC-CV charge from t0_s with one cell ahead of the others, that cell `soc` full: it passes
    3.65 V a few seconds of emulated time later (as `charge_ov`, without its 6 minutes). The charger
    starts after the firmware has closed the relay: hal_board drives the pin low (open) at boot, and
    a mains charger that sees the battery disappear stays off, as a real one does."""
    soc0 = [0.85] * 16
    soc0[high_cell] = soc
    cv = P.cell_cv("lfp", CHEMISTRY["lfp"], 3.55)
    return Scenario("charge_ov_near_full", 600, lambda seed: [P.mains(50.0, cv, 2.0, t0_s)],
                    plant_kw={"soc0": soc0, "h0": 1.0}, about="charge_ov, the high cell almost full")


def test_cell_over_voltage_at_end_of_charge_opens_the_power_path(pico):
    # cell_ov itself: no end-of-charge stop 50 mV below it (chg_stop_dmv, balancing), and the imbalance
    # alarm (the high cell runs ~300 mV above the others) held off past the test's end
    vb, tel = pico(_near_full(5, 0.9993, 6.0), board={"limits": {"chg_stop_dmv": 0, "imbal_ms": 600000}},
                   truth_every_ms=10)  # the board closes its path ~2-4 s in
    charging = tel.until(lambda t, f: t == "rep" and f["i_ma"] > 45_000, what="a report of the 50 A charge")
    assert not charging["alarm"] & CELL_OV and charging["fet"] & 7 == 7  # CC charge: path closed, AFE CHG on
    on = tel.until(lambda t, f: t == "evt" and f["name"] == "cell_ov" and f["on"] == 1, timeout=120,
                   what="the cell_ov trip")
    truth = {row[0]: row for row in vb.truth}
    # the plant's cells when the firmware decided: the high cell is the one it names, above the limit
    row = truth[max(t for t in truth if t <= on["ms"] + 10)]
    cells = row[3]
    assert on["idx"] == cells.index(max(cells)) == 5
    assert on["val"] > LFP_MAX_MV and max(cells) / 10 > LFP_MAX_MV - 6  # 1 mV noise (3 sigma) + quantisation
    # no trip before the cell passed the limit for the set delay: the plant was below it a second earlier
    before = truth[max(t for t in truth if t <= on["ms"] - 1100)]
    assert max(before[3]) / 10 < LFP_MAX_MV + 6
    held = tel.until(lambda t, f: t == "rep" and f["ms"] > on["ms"] + 1000, what="a report after the trip")
    assert held["alarm"] & CELL_OV and held["fet"] & 7 == 0 and abs(held["i_ma"]) < 200
    # the plant's side: the relay pin opened the power path and the charger's current stopped
    vb.wait_t(vb.t_ms + 200)
    assert vb.plant.relay_closed is False
    after = [r for r in vb.truth if r[0] > on["ms"] + 50]
    assert len(after) > 50 and all(r[1] == 0 for r in after)


def _rest():
    return Scenario("rest", 600, lambda seed: [P.Constant(0.0)], plant_kw={"soc0": 0.6}, about="no current")


def test_power_cut_in_the_middle_of_a_state_write_leaves_a_valid_record(pico):
    vb, tel = pico(_rest())
    hdr = tel.until(lambda t, f: t == "hdr", what="the boot header")
    assert hdr["boots"] == 1  # nothing persisted in the deployed image
    tel.until(lambda t, f: t == "rep", what="the first report")  # the boot save is done by then

    def command(line):
        tel.send(line)
        ok = tel.until(lambda t, f: t in ("ok", "err") and f.get("cmd") == line.split()[0], what=line)
        assert "error" not in ok, ok
        tel.until(lambda t, f: t == "rep", what="a report")  # the emulator's flash counter has caught up
        return vb.flash_ops

    # the state slots alternate: boot save -> A, `soc 700` -> B, `soc 730` -> A, the cut one -> B
    ops0 = vb.flash_ops
    per_write = command("soc 700") - ops0  # erases + programs one write of slot B takes
    command("soc 730")
    assert per_write >= 2
    vb.power_loss_at_flash_op(per_write // 2 + 1)  # within slot B's write, after its first half
    boots = vb.boots
    tel.send("soc 420")
    hdr = tel.until(lambda t, f: t == "hdr", timeout=90, what="the boot after the cut")
    assert vb.boots == boots + 1
    assert not [f for t, f in tel.frames if t == "ok" and f.get("cmd") == "soc" and f.get("soc_pm") == 420], \
        "the write finished before the cut: the cut did not land inside it"
    assert hdr["reset"] == "power"
    assert hdr["boots"] == 2  # a record was loaded (boots 1 in it): not a first boot on an empty store
    rep = tel.until(lambda t, f: t == "rep", what="the first report after the cut")
    assert rep["fault"] & STORE == 0
    assert rep["soc_pm"] in (730, 420)  # the last complete record, or the new one: never a mix or none


PROBE = r"""
import gc, json, time
from pwfw.hal_board import Hal
from pwfw.app import App
with open("board.json") as f:
    board = json.load(f)
board["wdt_ms"] = 0  # a started rp2 watchdog cannot be stopped: it would reset the board after the probe
hal = Hal(board)
app = App(hal)
T = [time.ticks_ms()]
def tms():
    return T[0]
def slp(ms):
    T[0] = time.ticks_add(T[0], ms)
hal.ticks_ms = tms  # the App's clock advances by its sleeps only: 100 ms samples back to back
hal.sleep_ms = slp
for k in range(200):  # the boot save, reports, cell reports, two voltage corrections
    app.step()
# the probe's own globals exist before the measurement: storing a new one (a0) after the first
# gc.mem_alloc() grew this module's dict, the 48 B once seen here
a0 = a1 = 0
print("\nHEAP_START")
gc.collect()
gc.disable()
a0 = gc.mem_alloc()
for k in range(%d):
    app.step()
a1 = gc.mem_alloc()
gc.enable()
print("\nHEAP", a1 - a0)
"""


def test_app_heap_and_zero_bytes_per_sample_on_the_rp2_port(pico):
    vb, tel = pico(_rest())
    tel.until(lambda t, f: t == "rep", what="the first report")
    tel.send("mem")  # the running firmware's live heap after a collection (what it holds)
    mem = tel.until(lambda t, f: t == "ok" and f.get("cmd") == "mem", what="the mem reply")
    tel.close()
    # less than half of rp2's heap in use: the rest stays free for the store's and the console's
    # short-lived buffers in a non-moving heap
    assert mem["sim"] == 0 and 0 < mem["alloc"] < mem["free"], mem
    n = 500  # 50 s of samples: 5 voltage corrections, 50 `rep`, 5 `cell`
    # mpremote's raw REPL soft-resets first: a fresh heap, main.py not run, the firmware's .mpy on the path
    out = subprocess.run([sys.executable, "-m", "mpremote", "connect", vb.port, "exec", PROBE % n],
                         capture_output=True, text=True, timeout=180, cwd=str(ROOT))
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("HEAP ")]
    assert line, out.stdout[-2000:] + out.stderr[-2000:]
    grew = int(line[-1].split()[1])
    frames = out.stdout.count("\n#", out.stdout.index("HEAP_START"))  # frames sent while measuring
    assert frames >= 50  # it did report while measuring (a frame allocating would show here)
    assert grew == 0, "%d B allocated over %d samples (%.2f B per sample, %d frames)" % (grew, n, grew / n, frames)
