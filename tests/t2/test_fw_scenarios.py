"""T2 scenario tests: the unmodified firmware on the virtual board against the simulated pack and its
faults (hil/scenarios.py). Each test fails if the firmware mishandles the fault class it names."""
import json
from pathlib import Path
import subprocess
import sys
import time

import pytest

from packwatch.protocol import PROT_BITS
from tests.support import VECTORS, soc_vs_truth

MIN = 60_000
_BITS = json.loads(VECTORS.read_text())["bits"]  # the spec's bit order (docs/protocol.md)
NAMES = tuple(_BITS["alarm"])
FAULTS = tuple(_BITS["fault"])


def bit(name):
    return 1 << NAMES.index(name)


def fbit(name):
    return 1 << FAULTS.index(name)


def events(c, name):
    return [f for t, f in c.frames if t == "evt" and f["name"] == name]


def soc_against_plant(c, t0_ms=0, min_n=60):
    """The firmware's SoC against the plant's truth over the run (tests.support.soc_vs_truth).
    Every scenario holds it to the issue-15 target that applies without knowing the start: the plant's
    SoC inside the reported ±3σ in ≥ 95 % of the reports ("never confidently wrong")."""
    s = soc_vs_truth(c.reports(), c.vb.truth, t0_ms)
    print(s)
    assert s.n >= min_n, s  # the reports were paired with the plant's steps
    return s


def test_over_voltage_trips_opens_relay_and_releases_with_hysteresis(board):
    c = board("charge_ov")
    c.until(lambda t, f: t == "rep")
    # trip below the high cell's full-charge rest voltage (~3.47 V) so the test controls the release
    # cell_ov itself: no end-of-charge stop 50 mV below it (chg_stop_dmv, balancing: tests/t2/test_balancing.py)
    assert c.unlocked("set chg_stop_dmv 0")[0] == "ok"
    assert c.unlocked("set cell_ov_mv 3500")[0] == "ok"  # a protection setting: unlock first
    on = c.until(lambda t, f: t == "evt" and f["name"] == "cell_ov" and f["on"] == 1, what="cell_ov trip")
    assert on["val"] > 3500 and on["idx"] == 5  # the high cell (0-based), as the plant has it
    charging = [r for r in c.reports() if r["ms"] < on["ms"] - 2000]
    assert charging and all(r["i_ma"] > 40_000 for r in charging[-5:])  # CC charge until the trip
    # relay open: the charger is cut off and the cell relaxes, but stays within the 50 mV hysteresis
    c.wait_t(c.vb.t_ms + 120_000)
    held = [r for r in c.reports() if r["ms"] > on["ms"] + 2000]
    assert len(held) > 60
    assert all(r["alarm"] & bit("cell_ov") and abs(r["i_ma"]) < 200 for r in held)
    assert all(3450 < max(r["cell_mv"]) <= 3500 for r in held[-10:])
    assert not [f for f in events(c, "cell_ov") if f["on"] == 0]
    # a narrower hysteresis puts the release threshold above the cell: released after release_ms
    assert c.unlocked("set cell_ov_hyst_mv 20")[0] == "ok"  # the first unlock has timed out (60 s)
    off = c.until(lambda t, f: t == "evt" and f["name"] == "cell_ov" and f["on"] == 0, what="cell_ov release")
    assert off["val"] < 3500 - 20
    r = c.until(lambda t, f: t == "rep" and f["ms"] > off["ms"])
    assert not r["alarm"] & bit("cell_ov")
    s = soc_against_plant(c)
    assert s.in_3sigma >= 0.95, s
    # issue 15's "within 3 points after a full charge": test_soc_within_3_points_once_full


def test_over_temperature_under_heavy_load(board):
    # two layers at 60 degC: the firmware's dsg_tmax (ot_dsg) and the AFE's OTD on its own thermistors
    # (prot bit otd); whichever acts first cuts the load, and the plant's current must stop
    c = board("hot_load")
    ev = c.until(lambda t, f: t == "evt" and f["name"] in ("ot_dsg", "otd") and f["on"] == 1, timeout=120,
                 what="ot_dsg or otd trip")
    hot = [x for x in c.reports() if x["ms"] <= ev["ms"]]
    assert hot and max(hot[-1]["t_dc"]) >= 590  # 0.1 degC: at the 60 degC limit (within a sensor's 1 degC)
    r = c.until(lambda t, f: t == "rep" and f["ms"] > ev["ms"] + 2000)
    assert r["alarm"] & bit("ot_dsg") or r["prot"] & (1 << PROT_BITS.index("otd"))
    assert abs(r["i_ma"]) < 200  # load cut off
    row = c.vb.truth[-1]
    assert abs(row[1]) < 200, row[:3]  # and the plant agrees: no current flows
    before = [x for x in c.reports() if x["ms"] < ev["ms"] - 60_000]
    assert before and before[-1]["i_ma"] < -100_000  # it was under heavy discharge
    s = soc_against_plant(c)
    assert s.in_3sigma >= 0.95, s


def test_open_sense_wire_is_detected_and_latched(board):
    c = board("open_wire")
    on = c.until(lambda t, f: t == "evt" and f["name"] == "open_wire" and f["on"] == 1, timeout=120,
                 what="open_wire alarm")
    assert 20 * MIN <= on["ms"] <= 20 * MIN + 5000
    r = c.until(lambda t, f: t == "rep" and f["ms"] > on["ms"] + 1000)
    assert r["alarm"] & bit("open_wire")
    assert min(r["cell_mv"]) < 500 and r["cell_mv"].index(min(r["cell_mv"])) == 7  # cell 8 reads ~0 V
    assert r["cell_mv"][8] > 6000  # and cell 9 the sum of both: the stack still adds up
    assert on["idx"] == 7
    assert not events(c, "cell_uv") and not events(c, "cell_ov")  # a sensing fault, not a cell alarm
    assert abs(r["i_ma"]) < 200  # relay open: no data, no protection
    c.wait_t(41 * MIN, timeout=120)  # the wire is fixed at 40 min: the alarm is latched until cleared
    assert c.reports()[-1]["alarm"] & bit("open_wire")
    t, f = c.cmd("clear")
    assert t == "ok" and not f["alarm"] & bit("open_wire")
    t0 = c.reports()[-1]["ms"]
    r = c.until(lambda t, f: t == "rep" and f["ms"] > t0 + 3000)
    assert not r["alarm"] & bit("open_wire")
    s = soc_against_plant(c)  # a cell read as ~0 V for 20 min must not make the SoC confidently wrong
    assert s.in_3sigma >= 0.95, s


def test_i2c_faults_are_flagged_and_survived(board, tmp_path):
    # the AFE in CRC mode, so corrupted CRC bytes are a fault the driver must catch
    sim = json.loads((Path(__file__).resolve().parents[2] / "boards" / "sim.json").read_text())
    sim["afe"]["crc"] = True
    bf = tmp_path / "sim_crc.json"
    bf.write_text(json.dumps(sim))
    c = board("i2c_faults", board_file=bf)
    c.wait_t(50 * MIN, timeout=200)

    def spans(name):
        ev = events(c, name)
        ons = [e["ms"] for e in ev if e["on"]]
        offs = [e["ms"] for e in ev if not e["on"]]
        assert len(ons) == len(offs), ev  # every fault raised was cleared again
        return list(zip(ons, offs))
    afe = spans("afe")
    crc = spans("afe_crc")
    # bursts (hil/scenarios.py): 3 NACKs @5 min (one more than the retries), 2 timeouts @10 (absorbed),
    # 60 NACKs @25, 20 timeouts @35; 4 CRC errors @15 (absorbed or one sample), 50 CRC errors @40
    assert not [s for s in afe if 10 * MIN <= s[0] < 11 * MIN]
    for t in (5, 25, 35):
        hit = [s for s in afe if t * MIN <= s[0] < t * MIN + 2000]
        assert hit, "no afe fault for the burst at %d min: %r" % (t, afe)
        assert hit[0][1] - hit[0][0] < 10_000  # cleared once the bus answers again
    assert [s for s in crc if 40 * MIN <= s[0] < 40 * MIN + 2000]
    reps = c.reports()
    assert c.vb.boots == 1  # the loop never stopped
    assert all(b["seq"] > a["seq"] for a, b in zip(reps, reps[1:]))
    assert len(reps) >= 50 * 60 - 5  # a report every second through all of it
    late = [r for r in reps if r["ms"] > 47 * MIN]
    assert late and all(r["fault"] == 0 for r in late)
    # current_offset event at 45 min: +250 mA on the sensor shows in the reported current
    pre = [r["i_ma"] for r in reps if 44 * MIN <= r["ms"] < 45 * MIN]
    post = [r["i_ma"] for r in reps if 45 * MIN + 2000 <= r["ms"] < 46 * MIN]
    assert 150 < sum(post) / len(post) - sum(pre) / len(pre) < 350
    s = soc_against_plant(c)  # samples lost to bus faults, and a 250 mA current offset from 45 min
    assert s.in_3sigma >= 0.95, s


def test_ntc_open_short_stuck_give_null_and_fault(board):
    c = board("ntc_faults")
    c.wait_t(36 * MIN, timeout=150)
    reps = c.reports()

    def at(ms):
        return [r for r in reps if ms <= r["ms"] < ms + 60_000]
    assert all(r["t_dc"][0] is not None for r in at(2 * MIN))
    assert all(r["t_dc"][0] is None and r["fault"] & fbit("ntc") for r in at(6 * MIN))  # open
    assert all(r["t_dc"][1] is None for r in at(16 * MIN))  # short
    assert all(r["t_dc"][2] is None for r in at(22 * MIN + 60_000))  # stuck: caught after a minute
    ok = at(34 * MIN)
    assert ok and all(None not in r["t_dc"] and not r["fault"] & fbit("ntc") for r in ok)
    for r in reps:  # a broken sensor is never reported as a temperature
        assert all(t is None or -200 < t < 600 for t in r["t_dc"])
    s = soc_against_plant(c)
    assert s.in_3sigma >= 0.95, s


def test_power_loss_keeps_soc_and_state(board):
    c = board("demo")
    c.until(lambda t, f: t == "rep")
    # virtual time stands still between the test's steps, so the cut comes exactly 5 s of pack time
    # after the save however slowly this thread runs (at several hundred times real time a wall-clock
    # latency is minutes of pack time: the SoC drifted by 0.6 % and a periodic save came in between)
    c.freeze()
    t, f = c.cmd_frozen("soc 612")  # the board saves its state with the command
    assert t == "ok"
    since = len(c.frames)
    c.advance(5000)
    before = c.reports(since)[-1]["soc_pm"]  # the last report before the cut
    c.vb.restart("power")
    c.vb.hold_at_ms = None
    hdr = c.until(lambda t, f: t == "hdr", what="header after power loss")
    assert hdr["boots"] == 2 and hdr["reset"] == "power"
    r = c.until(lambda t, f: t == "rep" and f["seq"] >= 1)
    assert abs(r["soc_pm"] - before) <= 5  # restored, not re-estimated from the flat LFP voltage
    assert not r["fault"] & fbit("store")


def test_power_loss_at_any_instant_leaves_valid_state(board):
    # the scenario cuts power right after boot, twice within a second, mid-run, and while writing
    c = board("power_loss")
    c.wait_t(50 * MIN, timeout=200)
    hdrs = [f for t, f in c.frames if t == "hdr"]
    assert len(hdrs) >= 4
    assert [h["boots"] for h in hdrs] == sorted(h["boots"] for h in hdrs)
    reps = c.reports()
    assert all(not r["fault"] & fbit("store") for r in reps)
    # every boot resumes from a save: its first SoC is one the board reported within the save policy's
    # window before the cut (1 % of SoC, at most every 2 min: docs/persistence.md), never a fresh guess
    boots = []
    for t, f in c.frames:
        if t == "hdr":
            boots.append([])
        elif t == "rep" and boots:
            boots[-1].append(f["soc_pm"])
    before = []
    for k, socs in enumerate(boots):
        if k and socs:
            window = before[-130:]  # reports are 1 s apart: the last 130 s before the cut
            assert min(abs(socs[0] - v) for v in window) <= 3, (k, socs[0], window[-5:])
        before += socs
    s = soc_against_plant(c)  # across five power cuts: restored states are as honest as the first
    assert s.in_3sigma >= 0.95, s


def test_power_loss_during_flash_writes(board):
    # cut power at many points inside state saves: the store must always load a valid record
    c = board("demo")
    c.until(lambda t, f: t == "rep")
    kills = 0
    for k in range(8):
        # virtual time stands still but for the one sample that takes the saves: wherever the wall-clock
        # cut lands (inside a write, or after them all), no pack time passed since `soc`, so every
        # record on flash holds that SoC (a late cut used to find drifted periodic saves: 53.7 % for 55 %)
        c.freeze()
        assert c.cmd_frozen("soc %d" % (300 + 50 * k))[0] == "ok"
        c.ser.write(b"save\nsave\nsave\n")
        boots = c.vb.boots
        c.vb.power_loss_in(0.0005 * k)  # somewhere in the middle of the three writes
        c.vb.hold_at_ms += 100
        end = time.monotonic() + 60
        while c.vb.boots == boots:
            c.read()
            assert time.monotonic() < end, "no power cut"
        c.vb.hold_at_ms = None
        hdr = c.until(lambda t, f: t == "hdr" and f["boots"] >= k + 2, timeout=60)
        kills += 1
        r = c.until(lambda t, f: t == "rep" and f["ms"] >= 1000)
        assert not r["fault"] & fbit("store"), "state lost after power cut %d" % k
        assert abs(r["soc_pm"] - (300 + 50 * k)) <= 10
    assert kills == 8


def test_telemetry_agrees_with_plant_truth(board):
    c = board("demo", truth_every_ms=100)
    c.wait_t(20 * MIN, timeout=120)
    # the truth of the very step each report was sampled in: keyed by the firmware's clock (one boot)
    truth = {row[7]: row for row in c.vb.truth}
    n = 0
    for r in c.reports():
        row = truth.get(r["ms"])
        if row is None:
            continue
        t_ms, i_ma, stack_mv10, cells_mv10, temps_dc = row[:5]
        prev = truth.get(r["ms"] - 1000)
        if prev is None or abs(prev[1] - i_ma) > 500:
            continue  # a load step within the last second: the sample and the truth differ in time
        n += 1
        for got, want in zip(r["cell_mv"], cells_mv10):
            assert abs(got - want / 10) <= 6, (r["ms"], got, want)  # 1 mV noise (3σ) + quantisation
        assert abs(r["stack_mv"] - stack_mv10 / 10) <= 60  # 10 mV userV units + gain
        assert abs(r["i_ma"] - i_ma) <= 20 + abs(i_ma) // 200  # 10 mA CC2 units, 0.5 % gain
        for got, want in zip(r["t_dc"][:3], temps_dc[:3]):
            assert abs(got - want) <= 10  # MCU NTCs: 1 °C
        for got, want in zip(r["t_dc"][3:], temps_dc[3:5]):
            assert abs(got - want) <= 10  # BQ76952 TS1/TS2
    assert n > 500
    s = soc_against_plant(c)
    assert s.in_3sigma >= 0.95, s


def test_deploy_to_an_empty_virtual_board(board, tmp_path):
    c = board("demo", install=False, fs_dir=tmp_path / "empty")
    c.ser.write(b"\r\n")
    c.read()
    out = subprocess.run([sys.executable, "-m", "packwatch", "deploy", "--port", c.vb.port, "--board", "sim"],
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "verified" in out.stdout + out.stderr
    hdr = c.until(lambda t, f: t == "hdr", timeout=60, what="header from the deployed firmware")
    assert hdr["board"] == "sim" and hdr["fmt"] == 1
    c.until(lambda t, f: t == "rep")
    files = sorted(p.relative_to(tmp_path / "empty").as_posix() for p in (tmp_path / "empty").rglob("*.mpy"))
    assert "lib/pwfw/app.mpy" in files and "lib/pwfw/soc.mpy" in files
    assert json.loads((tmp_path / "empty" / "board.json").read_text())["name"] == "sim"


def test_heap_does_not_grow(board):
    c = board("day")
    c.until(lambda t, f: t == "rep")
    c.wait_t(10 * MIN, timeout=120)
    a = c.cmd("mem")[1]["alloc"]
    c.wait_t(70 * MIN, timeout=200)
    b = c.cmd("mem")[1]["alloc"]
    assert b <= a + 256, (a, b)  # an hour of sampling, reporting and saving leaves nothing behind
    assert c.vb.boots == 1
    s = soc_against_plant(c)
    assert s.in_3sigma >= 0.95, s


def test_ina228_current_source_board(board, tmp_path):
    # the ESP32 board file measures current with an INA228: a board file, not new code
    sim = json.loads((Path(__file__).resolve().parents[2] / "boards" / "sim.json").read_text())
    sim["current"]["source"] = "ina228"
    bf = tmp_path / "sim_ina.json"
    bf.write_text(json.dumps(sim))
    c = board("demo", board_file=bf, truth_every_ms=100)
    c.wait_t(5 * MIN, timeout=120)
    truth = {row[7]: row[1] for row in c.vb.truth}  # by the firmware's clock: the step it sampled
    n = 0
    for r in c.reports():
        want = truth.get(r["ms"])
        prev = truth.get(r["ms"] - 1000)
        if want is None or prev is None or abs(want - prev) > 500:
            continue
        n += 1
        assert abs(r["i_ma"] - want) <= 30 + abs(want) // 200, (r["ms"], r["i_ma"], want)
        assert not r["fault"]
    assert n > 100
    s = soc_against_plant(c)
    assert s.in_3sigma >= 0.95, s


def test_a_degrading_cell_is_found_and_limits_the_pack(board):
    c = board("weak_cell")
    uv = c.until(lambda t, f: t == "evt" and f["name"] == "cell_uv" and f["on"] == 1, timeout=150,
                 what="under-voltage of the weak cell")
    assert uv["idx"] == 10  # the degraded cell empties first, and the alarm names it
    imb = [e for e in events(c, "imbalance") if e["on"]]
    assert imb and imb[0]["idx"] == 10 and imb[0]["ms"] <= uv["ms"]  # warned before it was empty
    cells = [f for t, f in c.frames if t == "cell" and f["ms"] <= uv["ms"]]
    assert cells[-1]["soc_pm"].index(min(cells[-1]["soc_pm"])) == 10  # its own SoC is the lowest
    last = [f for t, f in c.frames if t == "rep" and f["ms"] <= uv["ms"]][-1]
    assert last["soc_pm"] <= 50  # the pack SoC follows the weakest cell: ~0 % when it is empty
    r = c.until(lambda t, f: t == "rep" and f["ms"] > uv["ms"] + 2000)
    assert abs(r["i_ma"]) < 200  # the AFE's DSG FET off: the load is cut
    s = soc_against_plant(c)
    assert s.in_3sigma >= 0.95, s
    # issue 15 target: LFP within 3 points after the first knee (the weak cell's, before its cut-off)
    empty = soc_against_plant(c, t0_ms=uv["ms"] - 10_000, min_n=5)
    assert empty.max <= 3.0, empty


def test_soc_error_does_not_grow_past_coulomb_counting(board):
    # issue 15 target: never worse than coulomb counting. Counting from the board's first report keeps
    # that report's error, give or take the sensors: 0.5 % current gain and 1.5 % capacity spread
    # (docs/hil.md) of the charge moved, + 1 point; the board may do better (an anchor), never worse
    c = board("demo")
    c.wait_t(20 * MIN, timeout=120)
    s = soc_against_plant(c)
    moved = sum(abs(b[3] - a[3]) for a, b in zip(s.pairs, s.pairs[1:]))  # SoC points charged + discharged
    bound = abs(s.err[0]) + 1.0 + 0.02 * moved
    assert s.max <= bound, (s, bound)


@pytest.mark.parametrize("stop", ["chg_off", "cell_ov"])
def test_soc_within_3_points_once_full(board, stop):
    # issue 15 target: LFP within 3 points after a full charge. charge_ov's charge is cut at the top cell,
    # by the end-of-charge CHG-off (cell_ov_mv - chg_stop_dmv, pwfw.balance) or, without it, by the
    # cell_ov trip: the current drops to 0 there, no CV tail follows. The board boots mid-charge with
    # no state (sigma wide); its SoC may drift to the anchor at 0.2 %/s (docs/cell-model.md): from 5 min
    # after the cut on it must be within 3 points of the plant, and inside 3 sigma from the cut on
    c = board("charge_ov")
    c.until(lambda t, f: t == "rep")
    if stop == "cell_ov":
        assert c.unlocked("set chg_stop_dmv 0")[0] == "ok"
    assert c.unlocked("set cell_ov_mv 3500")[0] == "ok"
    if stop == "cell_ov":
        end = c.until(lambda t, f: t == "evt" and f["name"] == "cell_ov" and f["on"] == 1, what="cell_ov trip")["ms"]
    else:  # the AFE's CHG driver off (`fet` bit 2) while the relay stays closed
        end = c.until(lambda t, f: t == "rep" and f["fet"] & 3 == 3 and not f["fet"] & 4, what="CHG off")["ms"]
    charging = [r for r in c.reports() if r["ms"] < end - 2000]
    assert charging and all(r["i_ma"] > 40_000 for r in charging[-5:])  # CC charge until the cut
    c.wait_t(end + 12 * MIN, timeout=180)
    top = max(row[5][k] for row in c.vb.truth if abs(row[0] - end) < 2000 for k in range(16))
    assert top >= 0.97, top  # the plant: its highest cell was at the top of charge when it was cut
    assert soc_against_plant(c, t0_ms=end).in_3sigma >= 0.95
    s = soc_against_plant(c, t0_ms=end + 5 * MIN)
    assert s.max <= 3.0, s
