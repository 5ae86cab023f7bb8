"""T2: the AFE's hardware protections on the virtual board (issue 12 item 11): the firmware configures
the simulated BQ76952, the chip's protection state machine runs every step in its own µs time base
and its FETs cut the plant's current (hil/scenarios.py: short_circuit, surge, surge_long, cov_charge).

Expected bounds come from the board file these tests write (afe.protect, in the units the TRM's
tables use: SCD delay in 15 µs steps, OCD delay (code + 2) × 10/3 ms, COV 50.6 mV steps; SLUUBY2B
section 13) and from the plant's own log of interruptions (Plant.interruptions, plant µs): never
from the firmware's or the chip's code."""
import json
from pathlib import Path

from tests.support import VECTORS

ROOT = Path(__file__).resolve().parents[2]
PROT = tuple(json.loads(VECTORS.read_text())["bits"]["prot"])  # docs/protocol.md's `prot` bit order
FET = tuple(json.loads(VECTORS.read_text())["bits"]["fet"])
S = 1000


def prot_bit(name):
    return 1 << PROT.index(name)


# the protections under test, chosen so each delay is exactly representable in the TRM's units
PROTECT = {"scd_ma": 400_000, "scd_us": 120, "scd_recov_s": 5,  # 120 us = 8 steps of 15 us
           "ocd2_ma": 252_000, "ocd2_ms": 20,  # (4 + 2) * 10/3 ms
           "ocd1_ma": 176_000, "ocd1_ms": 400}  # (118 + 2) * 10/3 ms


NO_STOP = {"chg_stop_dmv": 0}  # no end-of-charge stop below cell_ov (pwfw.balance): the protections are tested


def board_file(tmp_path, protect=None, limits=None):
    sim = json.loads((ROOT / "boards" / "sim.json").read_text())
    sim["afe"]["protect"] = dict(PROTECT, **(protect or {}))
    if limits:
        sim["limits"] = dict(sim.get("limits", {}), **limits)
    f = tmp_path / "sim_protect.json"
    f.write_text(json.dumps(sim))
    return f, sim


def cov_threshold_mv10(mv):
    """The COV threshold the part can hold nearest the board's value: 50.6 mV steps (SLUUBY2B 13, COV
    Threshold), in the plant's 0.1 mV."""
    return round(mv / 50.6) * 506


def evts(c, name):
    return [f for t, f in c.frames if t == "evt" and f["name"] == name]


def cuts(vb, how=None):
    with vb._lock:
        return [e for e in vb.plant.interruptions if how is None or e[3] == how]


def test_short_circuit_is_cut_by_the_afe_within_its_scd_delay_and_recovers(board, tmp_path):
    bf, sim = board_file(tmp_path)
    c = board("short_circuit", board_file=bf, truth_every_ms=100)
    c.wait_t(11 * S)
    faults = [e for e in c.vb.plant.fault_log if e[1] == "short_circuit"]
    assert len(faults) == 1
    onset_us = faults[0][0]
    assert all(e[1] >= onset_us for e in cuts(c.vb))  # the load ran through the AFE's FETs until the fault
    assert any(r[1] < -5000 and r[10] & 4 for r in c.vb.truth if 5 * S < r[0] < onset_us // 1000)
    afe = cuts(c.vb, "afe")
    assert afe, "the short was never interrupted inside a step"
    on_us, cut_us, amps, _ = afe[0]
    assert on_us == onset_us and amps < -1000  # kA through the short, limited by the cells' R0
    assert 0 <= cut_us - onset_us <= sim["afe"]["protect"]["scd_us"]  # within the configured SCD delay
    # the firmware reports the trip: evt scd and the prot bit, the AFE's DSG driver off
    on = c.until(lambda t, f: t == "evt" and f["name"] == "scd" and f["on"] == 1, what="evt scd on")
    rep = c.until(lambda t, f: t == "rep" and f["prot"] & prot_bit("scd"), what="rep with prot scd")
    assert not rep["fet"] & (1 << FET.index("afe_dsg")) and abs(rep["i_ma"]) < 1000
    # while latched nothing flows (the load is still there): the plant's truth says so
    c.wait_t(14 * S)
    held = [r for r in c.vb.truth if 10_500 <= r[0] <= 14_000]
    assert held and all(r[1] == 0 and not r[10] & 4 for r in held)  # no current, DSG off
    # SCD Recovery Time (the board's scd_recov_s): the part releases it and the load runs again
    c.wait_t(onset_us // 1000 + (sim["afe"]["protect"]["scd_recov_s"] + 3) * S)
    off = c.until(lambda t, f: t == "evt" and f["name"] == "scd" and f["on"] == 0, what="evt scd off")
    assert off["ms"] - on["ms"] >= sim["afe"]["protect"]["scd_recov_s"] * S - 1000  # not before the recovery time
    back = [r for r in c.vb.truth if r[0] > onset_us // 1000 + sim["afe"]["protect"]["scd_recov_s"] * S]
    assert back and back[-1][1] < -5000 and back[-1][10] & 4  # discharging again, DSG on


def _surge(board, tmp_path, scenario, name):
    bf, sim = board_file(tmp_path)
    c = board(scenario, board_file=bf, truth_every_ms=100)
    c.wait_t(13 * S)
    onset_us = [e for e in c.vb.plant.fault_log if e[1] == "surge"][0][0]
    afe = cuts(c.vb, "afe")
    assert afe and afe[0][0] == onset_us, afe
    c.until(lambda t, f: t == "evt" and f["name"] == name and f["on"] == 1, what="evt %s on" % name)
    assert not evts(c, "scd")  # below the SCD threshold: not a short
    return afe[0][1] - onset_us, sim["afe"]["protect"]


def test_surge_past_ocd2_is_cut_within_its_delay(board, tmp_path):
    took_us, p = _surge(board, tmp_path, "surge", "ocd2")  # 300 A > OCD2 252 A, < SCD 400 A
    assert 0 < took_us <= p["ocd2_ms"] * 1000


def test_long_overload_past_ocd1_is_cut_within_its_delay(board, tmp_path):
    took_us, p = _surge(board, tmp_path, "surge_long", "ocd1")  # 200 A: between OCD1 176 A and OCD2 252 A
    assert p["ocd2_ms"] * 1000 < took_us <= p["ocd1_ms"] * 1000


def test_end_of_charge_the_firmwares_cell_ov_opens_the_path_before_the_afes_cov(board, tmp_path):
    # the end-of-charge stop (chg_stop_dmv, balancing) would end the charge 50 mV below cell_ov: off here,
    # so the over-voltage protections themselves are what acts (tests/t2/test_balancing.py tests the stop)
    bf, sim = board_file(tmp_path, protect={"cov_mv": 3750, "cov_ms": 1000}, limits=NO_STOP)
    c = board("cov_charge", board_file=bf, truth_every_ms=100)
    on = c.until(lambda t, f: t == "evt" and f["name"] == "cell_ov" and f["on"] == 1, timeout=120,
                 what="cell_ov trip")
    c.wait_t(c.vb.t_ms + 20 * S)
    path = cuts(c.vb, "path")
    assert path, "the firmware's cell_ov did not interrupt the charge"
    # the highest cell never reached the AFE's COV: the firmware acted first, and the AFE did not trip
    assert max(max(r[3]) for r in c.vb.truth) < cov_threshold_mv10(sim["afe"]["protect"]["cov_mv"])
    assert not evts(c, "cov") and not cuts(c.vb, "afe")
    late = [r for r in c.vb.truth if r[0] > path[0][1] // 1000 + 200]
    assert late and all(r[1] <= 0 for r in late)  # the charger pushes, nothing goes in
    assert on["val"] >= 3650


def test_end_of_charge_with_a_slow_firmware_limit_the_afe_cuts_charging(board, tmp_path):
    # a test board whose firmware limit is as high as its hard limit lets it (the AFE's COV as the
    # part applies it: 3600 mV is 71 steps of 50.6 mV, 3592 mV) and 20 s slow: the hardware layer
    # must act alone (a firmware limit above the AFE's COV is refused since the hard limits)
    bf, sim = board_file(tmp_path, protect={"cov_mv": 3600, "cov_ms": 1000, "cov_hyst_mv": 100},
                         limits=dict(NO_STOP, cell_ov_mv=3592, cell_ov_ms=20_000))
    cov_mv = sim["afe"]["protect"]["cov_mv"]
    c = board("cov_charge", board_file=bf, truth_every_ms=100)
    c.until(lambda t, f: t == "evt" and f["name"] == "cov" and f["on"] == 1, timeout=120, what="evt cov on")
    c.wait_t(c.vb.t_ms + 5 * S)
    tr = c.vb.truth
    first = next(r for r in tr if max(r[3]) >= cov_threshold_mv10(cov_mv))  # the plant's cell passes COV
    stop = next(r for r in tr if r[0] > first[0] and not r[10] & 2)  # the AFE's CHG FET off
    # COV's delay (the board's cov_ms; 3.3 ms units) plus two steps of the chip's 1 mV noisy reading
    assert stop[0] - first[0] <= sim["afe"]["protect"]["cov_ms"] + 200
    after = [r for r in tr if r[0] >= stop[0]]
    assert after and all(r[1] <= 0 for r in after)  # no charge flows, while
    assert all(r[6] for r in after)  # the relay stays closed: the firmware's own limit never tripped
    assert not [f for f in evts(c, "cell_ov") if f["on"] == 1]
