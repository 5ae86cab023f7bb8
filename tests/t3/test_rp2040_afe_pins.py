"""T3: the BQ76952's two wires to the MCU besides I2C on the emulated RP2040 (issue 12 on issue 16's
target): its ALERT output on GP6 (the pico board's `alert_pin`), and its REG1, the MCU's supply, which
SHUTDOWN turns off (the board goes dark until a charger at LD wakes the part: data sheet, SHUTDOWN).

One board, one run, both in order (each boot costs seconds of emulated time): a 200 A load above the
AFE's OCD1 makes the part alert, then the pack stays below the board's deep-discharge threshold for
its shutdown time, the firmware sends SHUTDOWN, and a charger plugged in later brings the board back.

Expected values come from the part's own registers in the same reply (FET Status bit 6 ALRT_PIN,
Safety Status A bit 5 OCD1: TRM SLUUBY2B 12.2), the AFE settings read back by `afe`, the plant's truth
(lockstep rows: [0] plant ms, [1] current at the step's end, [7] the firmware's clock, [8] boot,
[10] path bits relay/CHG/DSG) and the board-file values the test sets.
"""
import select
import time

import pytest

from hil import profiles as P
from hil.scenarios import Scenario
from packwatch.protocol import FAULT_BITS
from packwatch.vboard.rp2040 import unavailable

_why = unavailable()
pytestmark = [pytest.mark.t3, pytest.mark.skipif(_why is not None, reason="emulated RP2040: %s" % _why)]

STORE = 1 << FAULT_BITS.index("store")
OCD1 = 0x20  # Safety Status A bit 5 (TRM SLUUBY2B 12.2.2)
ALRT_PIN = 0x40  # FET Status bit 6: the part's ALERT pin asserted (TRM SLUUBY2B 12.2.21)
LOAD_A = 200.0  # above the pico board's AFE OCD1 (checked against the `afe` read-back below)
T_ON = 3200  # ms: the load starts (the board closes its path ~2.2 s in)
T_WAKE = 6500  # ms: the load is unplugged and a charger plugged in at LD
SHUTDOWN_S = 3  # the board's failsafe.shutdown_s: its deep-UV timer runs from the first sample
WAIT = 300.0  # s of wall time for any one step (the emulator runs at 0.1-0.4x real time under load)


def _scenario():
    # LFP at 50 % rests near 3.3 V/cell, below the board's shutdown_mv of 3500 (its maximum), so the
    # firmware's deep-discharge timer runs from the first sample, through the load (no charge current)
    return Scenario("ocd_then_deep_uv", 30, lambda seed: [P.Constant(-LOAD_A, T_ON / 1000, T_WAKE / 1000),
                                                          P.pushing_charger(20.0, 3.45 * 16, T_WAKE / 1000)],
                    plant_kw={"soc0": 0.5}, about="an over-current alert, then deep-UV SHUTDOWN, then a charger")


def _afe_at(vb, tel, t_ms):
    """The `afe` command answered at a defined emulated time: virtual time is held at t_ms while the
    line reaches the board's serial port, so the firmware reads it in its first step after t_ms."""
    vb.hold_at_ms = t_ms
    end = time.monotonic() + WAIT
    while not vb.held:
        assert not vb.error, vb.error
        assert time.monotonic() < end, "emulated time never reached %d ms (at %d)" % (t_ms, vb.t_ms)
        time.sleep(0.01)
    n = len(tel.frames)
    tel.send("afe")
    # time stands still until the line has crossed the relay into the board's pty (the bridge, held,
    # does not read it meanwhile)
    while not select.select([vb._a_slave], [], [], 0.01)[0]:
        assert time.monotonic() < end, "the line never reached the board's serial port"
    vb.hold_at_ms = None
    tel.until(lambda t, f: t in ("ok", "err") and f.get("cmd") == "afe", timeout=WAIT, what="the afe reply")
    got = tel.frames[n:]
    # the reply, not the last frame read: a `rep` may come in the same read after it
    k = next(i for i, (t, f) in enumerate(got) if t in ("ok", "err") and f.get("cmd") == "afe")
    assert got[k][0] == "ok", got[k]
    return [f for t, f in got[:k] if t == "afe"][-1], got[k][1]


def test_alert_on_gp6_then_deep_uv_shutdown_goes_dark_and_a_charger_wakes_the_board(pico):
    vb, tel = pico(_scenario(), board={"failsafe": {"shutdown_mv": 3500, "shutdown_s": SHUTDOWN_S}},
                   truth_every_ms=10)
    hdr1 = tel.until(lambda t, f: t == "hdr", timeout=WAIT, what="the boot header")

    # --- ALERT: the firmware reads GP6 as the part drives it -------------------------------------
    regs, before = _afe_at(vb, tel, T_ON - 500)
    assert any(t == "rep" and f["fet"] & 7 == 7 for t, f in tel.frames), \
        "the board had not closed its path %d ms in: the checks below need it running" % (T_ON - 500)
    assert LOAD_A * 1000 > regs["ocd1_ma"]  # the load is an over-current for the part
    # nothing alerted yet: the part does not assert its pin, and the firmware reads it not asserted
    assert before["safety_a"] == 0 and not before["fet_status"] & ALRT_PIN
    assert before["alert"] == 0
    regs2, after = _afe_at(vb, tel, T_ON + regs["ocd1_ms"] + 200)  # OCD1 tripped, inside its recovery
    assert after["safety_a"] & OCD1 and after["fet_status"] & ALRT_PIN  # the part tripped and alerts
    assert after["alert"] == 1  # ... and the firmware sees its ALERT pin asserted
    truth = [r for r in vb.truth if r[8] == 1]
    cut = next(r for r in truth if r[0] > T_ON and not r[10] & 4)  # the part's DSG FET opened
    assert abs(cut[0] - (T_ON + regs["ocd1_ms"])) <= 20  # after OCD1's delay (10 ms plant steps)

    # --- SHUTDOWN: the board goes dark, a charger at LD wakes it ---------------------------------
    shut = tel.until(lambda t, f: t == "evt" and f["name"] == "shutdown", timeout=WAIT, what="evt shutdown")
    # the next frame with a time past the shutdown must be the wake's header: none while dark
    nxt = tel.until(lambda t, f: t == "hdr" or f.get("ms", 0) > shut["ms"] + 200, timeout=WAIT,
                    what="the header after the charger woke the board")
    assert "reset" in nxt, "the board kept running after SHUTDOWN: %r" % (nxt,)
    hdr2 = nxt
    rep2 = tel.until(lambda t, f: t == "rep", timeout=WAIT, what="a report after the wake")
    vb.wait_t(vb.t_ms + 300, timeout=WAIT)
    assert shut["on"] == 1 and shut["val"] < 3500 and shut["ms"] >= SHUTDOWN_S * 1000
    k = tel.frames.index(("hdr", hdr2))
    # dark: not a frame from the MCU between the shutdown and the wake
    assert all(f["ms"] <= shut["ms"] + 200 for t, f in tel.frames[:k] if "ms" in f)
    # the plant: the load still asks for 200 A, but with the part off nothing conducts until the wake
    truth = [r for r in vb.truth if r[8] == 1]
    dark = [r for r in truth if r[7] > shut["ms"] + 200]
    assert dark and all(r[10] == 0 and r[1] == 0 for r in dark)
    assert dark[-1][0] >= T_WAKE - 1000  # ... and it stays dark until the charger comes (1 s steps)
    # the wake: a new boot (the MCU's supply back: a power-on) on the same plant clock, its state restored
    assert vb.boots == 2 and hdr2["reset"] == "power" and hdr2["boots"] == hdr1["boots"] + 1
    tr2 = [r for r in vb.truth if r[8] == 2]
    assert tr2 and T_WAKE <= tr2[0][0] <= T_WAKE + 1100
    assert not rep2["fault"] & STORE
    # the board closes its path again and the charger's current flows into the pack
    assert any(r[10] & 7 == 7 and r[1] > 15000 for r in tr2 if r[7] >= rep2["ms"])
