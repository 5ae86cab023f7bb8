"""T2: issue 12's limits through the virtual board's serial port, as a pack builder meets them: `set`
beyond a chemistry's hard limit is refused even when unlocked, a protection change without `unlock` is
refused, with it accepted and reported as an `evt`; `afe` reads back what the board file asked, in the
TRM's units (expected values worked out here from the board file and the TRM's steps, never by our
encoder), and the part is SEALED again afterwards (the loop would see any other security mode in
Battery Status within one sample and send `afe_reset`)."""
import json
import time

from tests.support import ROOT

SIM = json.loads((ROOT / "boards" / "sim.json").read_text())
KEY = SIM.get("unlock_key", "packwatch")  # docs/configuration.md: the default for a board without one


def test_set_beyond_the_hard_limit_is_refused_even_unlocked(board):
    c = board("demo")
    c.until(lambda t, f: t == "rep")
    t, f = c.cmd("set cell_ov_mv 3760")  # refused for what it is, even before an unlock
    assert t == "err" and f["error"].startswith("cell_ov_mv=3760 beyond its hard limit"), f
    # LFP cells: hard limit 3750 mV (data sheets, docs/configuration.md); the board's AFE COV asked
    # 3750 mV is TRM code round(3750 / 50.6) = 74, 74 x 50.6 = 3744.4 mV: the firmware may not sit above it
    afe_cov = int(round(3750 / 50.6) * 50.6)
    for v in (4500, 3760, afe_cov + 1):
        t, f = c.unlocked("set cell_ov_mv %d" % v, KEY)
        assert t == "err", v
        assert f["error"].startswith("cell_ov_mv=%d beyond its hard limit" % v) and str(afe_cov) in f["error"], f
    t, f = c.unlocked("set chg_tmin_dc -50", KEY)  # charging below 0 degC: never, on any cell we know
    assert t == "err" and "chg_tmin_dc=-50 beyond its hard limit 0.." in f["error"], f
    c.ser.write(b"config\n")
    assert c.until(lambda t, f: t == "cfg")["cell_ov_mv"] == 3650  # unchanged
    t, f = c.unlocked("set cell_ov_mv %d" % afe_cov, KEY)  # at the limit: accepted
    assert t == "ok" and f["val"] == afe_cov


def test_a_protection_change_needs_unlock_and_is_reported(board):
    c = board("demo")
    c.until(lambda t, f: t == "rep")
    t, f = c.cmd("set cell_ov_mv 3600")
    assert t == "err" and f["error"].startswith("locked: cell_ov_mv"), f
    assert c.cmd("unlock wrong-key")[0] == "err"
    c.ser.write(b"config\n")
    assert c.until(lambda t, f: t == "cfg")["cell_ov_mv"] == 3650
    n = len(c.frames)
    t, f = c.unlocked("set cell_ov_mv 3600", KEY)  # unlock, then set 100 ms later
    assert t == "ok" and f["val"] == 3600
    assert ("ok", {"cmd": "unlock", "for_ms": 60000}) in c.frames[n:]
    ev = [f for t, f in c.frames[n:] if t == "evt" and f["name"] == "set"]
    assert len(ev) == 1 and (ev[0]["setting"], ev[0]["old"], ev[0]["val"]) == ("cell_ov_mv", 3650, 3600), ev
    assert c.cmd("lock")[0] == "ok"
    assert c.cmd("set cell_ov_mv 3550")[1]["error"].startswith("locked")


def test_afe_reads_back_what_the_board_file_asked_and_leaves_the_part_sealed(board, tmp_path):
    b = json.loads(json.dumps(SIM))
    ask = {"cov_mv": 3700, "cuv_mv": 2400, "ocd1_ma": 160000, "occ_ma": 120000, "scd_ma": 300000, "scd_us": 60,
           "otc_dc": 500, "utd_dc": -250}
    b["afe"]["protect"] = ask
    b["limits"] = {"chg_tmax_dc": 450, "dsg_tmin_dc": -200}
    bf = tmp_path / "board.json"
    bf.write_text(json.dumps(b))
    c = board("demo", board_file=bf)
    c.until(lambda t, f: t == "rep")
    r = b["current"]["shunt_uohm"] / 1e6  # ohm
    t0 = time.monotonic()
    n = len(c.frames)
    t, ok = c.cmd("afe")
    wall = time.monotonic() - t0
    afe = [f for tt, f in c.frames[n:] if tt == "afe"]
    assert t == "ok" and len(afe) == 1, (t, ok)
    a = afe[0]
    # TRM SLUUBY2B 13.6: COV/CUV in 50.6 mV steps; OCC/OCD in 2 mV across the shunt; SCD a table of
    # shunt voltages (10, 20, 40, 60, 80, 100, 125, 150, 175, 200, 250, 300, 350, 400, 450, 500 mV), the
    # highest not above the ask; SCD delay (code - 1) x 15 us; temperatures whole degC
    assert abs(a["cov_mv"] - round(3700 / 50.6) * 50.6) <= 0.5
    assert abs(a["cuv_mv"] - round(2400 / 50.6) * 50.6) <= 0.5
    assert a["ocd1_ma"] == round(round(160 * r / 0.002) * 0.002 / r * 1000)  # 160 A x 0.5 mOhm = 80 mV: code 40
    assert a["occ_ma"] == round(round(120 * r / 0.002) * 0.002 / r * 1000)  # 60 mV: code 30
    scd_mv = max(v for v in (10, 20, 40, 60, 80, 100, 125, 150, 175, 200, 250, 300, 350, 400, 450, 500)
                 if v <= 300 * r * 1000)
    assert a["scd_ma"] == round(scd_mv / 1000 / r * 1000)  # 150 mV on 0.5 mOhm: 300 A
    assert a["scd_us"] == round(60 / 15) * 15
    assert a["otc_dc"] == 500 and a["utd_dc"] == -250
    # the ones not asked: the LFP defaults of docs/hardware.md ("AFE protections")
    assert abs(a["cov_ms"] - round(1000 / 3.3) * 3.3) <= 1 and a["otd_dc"] == 600 and a["sleep"] == 0
    assert ok["sec"] == "sealed" and ok["safety_a"] == 0 and ok["pf_a"] == 0
    assert ok["fet_status"] & 5 == 5  # CHG and DSG FETs on (FET Status bits 0, 2): the pack runs
    print("afe: %d ms of the board's time, %.3f s round trip on the host" % (ok["took_ms"], wall))
    # sealed again: any other security mode changes Battery Status, which the loop checks every sample
    m = len(c.frames)
    c.wait_t(c.vb.t_ms + 3000)
    assert not [f for tt, f in c.frames[m:] if tt == "evt" and f["name"] in ("afe_reset", "afe_config")]
    reps = c.reports(m)
    assert reps and all(r["fault"] & 1 == 0 and r["fet"] & 3 == 3 for r in reps)  # the loop ran on, path closed
    t, ok2 = c.cmd("afe")  # and the keys unseal it again: it was sealed with the same keys
    assert t == "ok" and ok2["sec"] == "sealed"
