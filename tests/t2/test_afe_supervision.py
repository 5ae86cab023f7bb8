"""T2: the firmware supervising its AFE on the virtual board (issue 12 item 11): a brown-out of the
BQ76952 mid-run (a POR: the part's RAM settings, its current unit and CC Gain among them, back to the
TRM's defaults, its FETs off), configure() failing at boot, every temperature sensor lost, and a
deep under-voltage ending in SHUTDOWN.

The firmware's telemetry is checked against the plant's truth (hil/plant.py through the lockstep's
truth rows: row[1] the current at the step's end, row[7] the firmware's clock at that step, row[8]
the boot, row[10] the power path the step had: bit 0 relay, 1 the AFE's CHG FET, 2 its DSG FET).
A report is paired with the truth of the very step it was sampled in (by the firmware's clock, as
the e2e tests do). Tolerances come from the parts: CC2 in the board's 10 mA units plus the 0.5 %
the simulated part's gain may be off (test_fw_scenarios.test_telemetry_agrees_with_plant_truth)."""
import json
from pathlib import Path

import pytest

from hil import profiles as P
from hil.scenarios import Scenario
from tests.support import VECTORS

ROOT = Path(__file__).resolve().parents[2]
_BITS = json.loads(VECTORS.read_text())["bits"]
FAULT = tuple(_BITS["fault"])  # docs/protocol.md's fault bit order
S = 1000
LOAD_A = -15.0  # a steady 15 A discharge (~770 W): the stale-unit reading would be ~5x off


def fault_bit(name):
    return 1 << FAULT.index(name)


def board_file(tmp_path, name="sim_sup.json", **over):
    sim = json.loads((ROOT / "boards" / "sim.json").read_text())
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(sim.get(k), dict):
            sim[k] = dict(sim[k], **v)
        else:
            sim[k] = v
    f = tmp_path / name
    f.write_text(json.dumps(sim))
    return f


def load(events, seconds=60, amps=LOAD_A, soc0=0.6, name="supervision"):
    return Scenario(name, seconds, lambda seed: [P.Constant(amps)], events=events, plant_kw={"soc0": soc0})


def evts(c, name):
    return [f for t, f in c.frames if t == "evt" and f["name"] == name]


def i_tol(i_ma):
    return 20 + abs(i_ma) // 200  # 10 mA CC2 units + the part's gain error (0.5 %)


def paired(c, boot=1):
    """(rep, truth row) for every report of that boot whose sampled step has a truth row."""
    truth = {r[7]: r for r in c.vb.truth if r[8] == boot}
    out = []
    for r in c.reports():
        row = truth.get(r["ms"])
        if row is not None:
            out.append((r, row))
    return out


# ten brown-outs 2.1 s apart: each lands 100 ms later in the 1 s report period than the one before,
# so one of them is seen by a sample that is also a report's, whatever the boot's phase
BROWNOUTS = [20 * S + k * 2100 for k in range(10)]


def _brownouts(board, tmp_path, crc):
    bf = board_file(tmp_path, afe={"crc": crc})
    c = board(load([(t, "afe_brownout", ()) for t in BROWNOUTS]), board_file=bf, truth_every_ms=1)
    c.wait_t(BROWNOUTS[-1] + 5 * S)
    c.read()
    resets = evts(c, "afe_reset")
    confs = evts(c, "afe_config")
    assert [e["on"] for e in resets] == [1] * len(BROWNOUTS)
    assert [e["on"] for e in confs] == [0] * (len(BROWNOUTS) + 1)  # at boot, then after each reset
    for r in resets:  # each reset re-configured and every setting read back, at once
        assert any(0 <= e["ms"] - r["ms"] <= 500 for e in confs), r
    tr = [r for r in c.vb.truth if r[8] == 1]
    # each brown-out cut the current (the part's FETs off from its POR) until the part was configured
    # again: the plant's own path says so; and then it ran again
    for t in BROWNOUTS:
        off = [r for r in tr if t <= r[0] <= t + 2000 and not r[10] & 4]
        assert off and all(r[1] == 0 for r in off), t
        back = [r for r in tr if off[-1][0] < r[0] <= t + 2000]
        assert back and all(r[10] & 4 and r[1] < -14000 for r in back), t
    # every report's current is the plant's at its sample, never one scaled with the part's default
    # unit and CC Gain nor a held one; a current not measured at that sample (the part silent or not
    # verified) is null (docs/protocol.md), with the `current` fault, or at the sample that saw the reset
    pairs = paired(c)
    assert len(pairs) >= 40
    reset_ms = {e["ms"] for e in resets}
    unknown = []
    for r, row in pairs:
        if r["i_ma"] is None:
            unknown.append(r)
            assert r["fault"] & fault_bit("current") or r["ms"] in reset_ms, (r["ms"], r["fault"])
        else:
            assert abs(r["i_ma"] - row[1]) <= i_tol(row[1]), (r["ms"], r["i_ma"], row[1], r["fault"])
    rep_ms = {r["ms"] for r, _ in pairs}
    assert any(e["ms"] in rep_ms for e in resets)  # a report was sampled at a reset's own sample
    late = [r for r, row in pairs if r["ms"] > resets[-1]["ms"] + 1000]
    assert late and not any(r["fault"] & (fault_bit("afe") | fault_bit("afe_crc") | fault_bit("current"))
                            for r in late)
    return c, unknown, reset_ms


def test_afe_brownout_mid_run_is_reconfigured_and_no_report_carries_a_wrong_current(board, tmp_path):
    c, unknown, reset_ms = _brownouts(board, tmp_path, crc=False)
    # the reset is seen and the part re-configured within the sample that saw it: only that sample's
    # current (read with the unit the part lost) is unknown
    assert all(r["ms"] in reset_ms for r in unknown)


def test_crc_board_afe_brownout_mid_run_recovers_the_same_way(board, tmp_path):
    # the stock part comes back from its POR in plain I2C (OTP unprogrammed), where no CRC read of
    # the firmware's can see its POR bit: the CRC errors themselves must lead it back
    c, unknown, _ = _brownouts(board, tmp_path, crc=True)
    assert evts(c, "afe_crc")  # the CRC errors that revealed the reset were reported
    # samples of the recovery whose current was not measured were reported (as null, checked above)
    assert any(r["fault"] & fault_bit("current") for r in unknown)


RECONF_MS = 5000  # docs/protocol.md, afe_config on=1: "tried again every 5 s"


@pytest.mark.parametrize("kind", ["afe_nack", "afe_timeout"])
def test_configure_failing_at_boot_keeps_the_fets_off_until_a_retry_succeeds(board, tmp_path, kind):
    stop = 8 * S  # the bus fails from the first step until here (an n of 0 ends the burst)
    c = board(load([(0, kind, (30000,)), (stop, kind, (0,))], seconds=30), truth_every_ms=100)
    c.wait_t(stop + RECONF_MS + 3 * S)
    c.read()
    confs = evts(c, "afe_config")
    assert confs and confs[0]["on"] == 1 and confs[0]["setting"]  # names the step that failed
    ok = [e for e in confs if e["on"] == 0]
    assert ok and all(e["on"] == 1 for e in confs[:confs.index(ok[0])])
    assert not evts(c, "afe_crc")  # a plain board: the set-up's framing probe must not leave it on CRC
    tr = [r for r in c.vb.truth if r[8] == 1]
    # while the part cannot be configured its FETs stay off: nothing flows though the load wants 15 A
    failing = [r for r in tr if r[0] < stop]
    assert len(failing) > 50 and all(r[10] & 6 == 0 and r[1] == 0 for r in failing)
    assert all(r["fault"] & fault_bit("afe") and r["fet"] & 3 == 0 for r in c.reports()
               if r["ms"] < ok[0]["ms"])
    # after the faults stop, the next retry configures the part and the path closes
    closed = [r for r in tr if r[0] >= stop and r[10] == 7]
    assert closed and closed[0][0] <= stop + RECONF_MS + 500
    assert all(r[10] == 7 and abs(r[1] - LOAD_A * 1000) < 1000 for r in tr if r[0] > closed[0][0])
    pairs = [(r, row) for r, row in paired(c) if r["ms"] > ok[0]["ms"] + 1000]
    assert len(pairs) >= 3
    for r, row in pairs:
        assert abs(r["i_ma"] - row[1]) <= i_tol(row[1]) and not r["fault"], (r["ms"], r["i_ma"], row[1])


TEMP_MS = 1000  # docs/hardware.md, Supervision: the NTCs and TS inputs are read once a second


@pytest.mark.parametrize("keep_dsg", [False, True])
def test_every_ntc_open_turns_the_power_path_off(board, tmp_path, keep_dsg):
    # a board whose MCU NTCs are its only thermistors (no AFE TS inputs): all three open at once
    bf = board_file(tmp_path, bq_ts=[], failsafe={"keep_dsg": keep_dsg})
    onset = 10 * S
    c = board(load([(onset, "ntc", (ch, 1)) for ch in range(3)], seconds=30), board_file=bf,
              truth_every_ms=100)
    c.wait_t(onset + 5 * S)
    c.read()
    assert [e["on"] for e in evts(c, "no_temp")] == [1]
    tr = [r for r in c.vb.truth if r[8] == 1]
    before = [r for r in tr if 5 * S <= r[0] < onset]
    assert before and all(r[10] == 7 and r[1] < -14000 for r in before)
    # the plant's path: the first step after the onset with the charge FET off, within the firmware's
    # temperature period and one sample
    cut = next((r for r in tr if r[0] >= onset and not r[10] & 2), None)
    assert cut is not None, "the power path never opened"
    assert cut[0] - onset <= TEMP_MS + 100, cut[0] - onset
    after = [r for r in tr if r[0] >= cut[0]]
    if keep_dsg:  # the board keeps the load powered: relay and DSG on, charging never
        assert all(r[10] == 5 and r[1] < -14000 for r in after)
    else:  # nothing conducts
        assert all(r[10] & 5 == 0 and r[1] == 0 for r in after)
    last = c.reports()[-1]
    assert last["fault"] & fault_bit("no_temp") and all(t is None for t in last["t_dc"])


def test_deep_under_voltage_shuts_the_afe_down_and_a_charger_wakes_the_board(board, tmp_path):
    # a test board whose shutdown threshold (failsafe.shutdown_mv, at most 3500 mV) sits above the
    # cells at rest, so its policy acts within seconds: below it with no charge current for
    # shutdown_s -> state saved, evt shutdown, SHUTDOWN; the board's MCU runs from the AFE's REG1
    bf = board_file(tmp_path, failsafe={"shutdown_mv": 3500, "shutdown_s": 5})
    wake = 30 * S  # a charger is plugged in at LD here: it wakes the part (data sheet, SHUTDOWN)
    scen = Scenario("shutdown", 60, lambda seed: [P.Constant(LOAD_A, 0, 20), P.pushing_charger(20.0, 3.45 * 16, wake / S)],
                    plant_kw={"soc0": 0.5})
    c = board(scen, board_file=bf, truth_every_ms=100)
    shut = c.until(lambda t, f: t == "evt" and f["name"] == "shutdown", timeout=60, what="evt shutdown")
    hdr2 = c.until(lambda t, f: t == "hdr", timeout=60, what="the board's header after the wake")
    c.wait_t(wake + 8 * S)
    c.read()
    tr1 = [r for r in c.vb.truth if r[8] == 1]
    at = [r for r in tr1 if r[7] == shut["ms"]]
    assert at and shut["on"] == 1 and abs(shut["val"] - min(at[0][3]) / 10) <= 6  # the lowest cell
    assert shut["ms"] >= 5 * S
    # dark: the part's FETs off, relay open, nothing flows, until the charger wakes it
    dark = [r for r in tr1 if r[7] > shut["ms"] + 200]
    assert dark and all(r[10] == 0 and r[1] == 0 for r in dark)
    assert dark[-1][0] >= wake - 1000
    frames = c.frames[:c.frames.index(("hdr", hdr2))]
    assert all(f["ms"] <= shut["ms"] + 200 for t, f in frames if "ms" in f)  # no telemetry while dark
    before = [f for t, f in frames if t == "rep"][-1]
    # the charger woke it: a power-on, the state saved before the shutdown restored, the path closed
    assert c.vb.boots == 2 and hdr2["reset"] == "power"
    rep2 = [f for t, f in c.frames[c.frames.index(("hdr", hdr2)):] if t == "rep"]
    assert rep2 and not rep2[0]["fault"] & fault_bit("store")
    assert abs(rep2[0]["soc_pm"] - before["soc_pm"]) <= 5
    tr2 = [r for r in c.vb.truth if r[8] == 2]
    assert tr2 and tr2[0][0] >= wake
    assert tr2[-1][10] == 7 and tr2[-1][1] > 15000  # charging
