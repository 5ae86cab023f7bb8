"""T0: hard limits no command can exceed (per chemistry from the cell makers' data sheets, per board
from its ratings, its current sensor and the AFE's thresholds), the unlock that protection settings
need (key from the board file, timeout, lock-out after wrong keys, an `evt` per change), and the
`afe` command's read-back, on the App under CPython with the register-level chips (hil/chips).
Expected numbers come from the data sheets and the TRM (COV code x 50.6 mV, OCD code x 2 mV / shunt),
never from our encoder."""
import copy
import json

import pytest

from hil.hal_fake import FakeHal
from packwatch import boardfile
from packwatch.protocol import Decoder
from pwfw import ina228
from pwfw.app import App
from pwfw.config import Config
from tests.support import ROOT

SIM = json.loads((ROOT / "boards" / "sim.json").read_text())
LFP = {"chemistry": "lfp", "cells": 16}
NMC = {"chemistry": "nmc", "cells": 14}


# --- hard limits ----------------------------------------------------------------------------------
# (chemistry board, key, the last value allowed, the first refused): LFP charges to 3.60-3.65 V (A123
# ANR26650M1-B, EVE LF280K), NMC to 4.20 V (Samsung INR18650-35E, LG MJ1); docs/configuration.md
# "Hard limits" gives the table and the reasoning (one 50 mV step above the charge voltage).
CHEM = [
    (LFP, "cell_ov_mv", 3750, 3751), (NMC, "cell_ov_mv", 4250, 4251),
    (LFP, "cell_uv_mv", 2000, 1999), (NMC, "cell_uv_mv", 2500, 2499),
    (LFP, "chg_tmin_dc", 0, -1), (NMC, "chg_tmin_dc", 0, -1),  # no charging below 0 degC: lithium plating
    (LFP, "chg_tmax_dc", 550, 551), (NMC, "chg_tmax_dc", 450, 451),
    (LFP, "dsg_tmax_dc", 600, 601), (NMC, "dsg_tmax_dc", 600, 601),
    (LFP, "dsg_tmin_dc", -300, -301), (NMC, "dsg_tmin_dc", -200, -201),
]


@pytest.mark.parametrize("board,key,ok,bad", CHEM, ids=["%s:%s" % (c[0]["chemistry"], c[1]) for c in CHEM])
def test_chemistry_hard_limits_refuse_the_first_value_past_them(board, key, ok, bad):
    c = Config(board)
    if key == "cell_uv_mv":
        c.set("cell_ov_mv", 3600 if board is LFP else 4200)
    c.set(key, ok)
    with pytest.raises(ValueError) as e:
        c.set(key, bad)
    msg = str(e.value)
    assert msg.startswith("%s=%d beyond its hard limit " % (key, bad)) and str(ok) in msg, msg
    assert "%s cells" % board["chemistry"] in msg
    assert getattr(c, key) == ok  # nothing changed


def test_the_firmware_limit_stays_inside_the_afe_threshold_as_the_part_applies_it():
    # sim.json: the AFE's COV asked 3750 mV is code round(3750 / 50.6) = 74 -> 74 x 50.6 = 3744.4 mV
    # (TRM SLUUBY2B 13.6.1); the firmware's cell_ov must trip first, so 3745 is refused
    c = Config(SIM)
    c.set("cell_ov_mv", 3744)
    with pytest.raises(ValueError, match=r"cell_ov_mv=3745 beyond its hard limit 3400\.\.3744 mV \(the AFE's cov_mv"):
        c.set("cell_ov_mv", 3745)
    # OCD1 asked 176 A on 500 uOhm: 176 A x 0.5 mOhm = 88 mV = code 44 of 2 mV -> 44 x 2 mV / 0.5 mOhm = 176 A
    c.set("oc_dsg_ma", 176000)
    with pytest.raises(ValueError, match="the AFE's ocd1_ma"):
        c.set("oc_dsg_ma", 176001)
    # a lower AFE threshold pulls the firmware's limit with it; a board whose firmware default sits
    # above the AFE's is refused as a board file, naming both
    b = copy.deepcopy(SIM)
    b["afe"]["protect"] = {"cov_mv": 3600}  # code 71 -> 3592.6 mV, below the LFP default 3650: 3592 at most
    with pytest.raises(ValueError, match=r"board file: cell_ov_mv=3650 beyond its hard limit 3400\.\.3592 mV"):
        Config(b)
    b["limits"] = {"cell_ov_mv": 3550}
    assert Config(b).cell_ov_mv == 3550


def test_current_limits_follow_the_board_ratings_and_the_sensor_headroom():
    b = copy.deepcopy(SIM)
    b["ratings"] = {"chg_ma": 60000, "dsg_ma": 160000}
    with pytest.raises(ValueError, match=r"oc_chg_ma=100000 beyond its hard limit 100\.\.60000 mA \(board ratings\.chg_ma\)"):
        Config(b)  # the chemistry default (100 A) is more than this board's charge path takes
    b["limits"] = {"oc_chg_ma": 50000}
    c = Config(b)
    with pytest.raises(ValueError, match="ratings.dsg_ma"):
        c.set("oc_dsg_ma", 160001)
    # no ratings, a current sensor whose full scale is 240 A: a limit past 240 / 1.5 A would read clipped
    b = copy.deepcopy(SIM)
    b["current"]["max_ma"] = 240000
    b["afe"]["protect"] = {"ocd1_ma": 200000}  # the AFE's OCD1 above it, so the sensor is the bound
    c = Config(b)
    assert ina228.HEADROOM_PCT == 150
    c.set("oc_dsg_ma", 160000)
    with pytest.raises(ValueError, match=r"\(board current\.max_ma / 1\.5\)"):
        c.set("oc_dsg_ma", 160001)


def test_persisted_overrides_are_checked_against_the_hard_limits_at_boot():
    c = Config(SIM)
    bad = c.load_overrides({"cell_ov_mv": 3900, "cell_ov_hyst_mv": 40, "oc_dsg_ma": 999999})
    assert sorted(bad) == ["cell_ov_mv", "oc_dsg_ma"]
    assert c.cell_ov_mv == 3650 and c.cell_ov_hyst_mv == 40 and c.oc_dsg_ma == 150000


@pytest.mark.parametrize("patch,where", [
    ({"unlock_key": "has space"}, "unlock_key"),
    ({"unlock_key": "abc"}, "unlock_key"),
    ({"ratings": {"chg_amps": 5}}, "ratings.chg_amps"),
    ({"limits": {"cell_ov_mv": 3800}}, "limits.cell_ov_mv"),
])
def test_board_files_are_checked_against_the_same_limits(tmp_path, patch, where):
    b = copy.deepcopy(SIM)
    b.update(patch)
    p = tmp_path / "x.json"
    p.write_text(json.dumps(b))
    with pytest.raises(boardfile.BoardFileError) as e:
        boardfile.load_board(p)
    assert str(e.value).startswith("%s: %s: " % (p, where)), str(e.value)


# --- unlock ---------------------------------------------------------------------------------------
class Rig:
    def __init__(self, board):
        self.hal = FakeHal(board)
        self.app = App(self.hal)
        self.dec = Decoder()
        self.run(500)

    def run(self, ms):
        end = self.hal.t + ms
        while self.hal.t < end:
            self.app.step()
        out = self.dec.feed(bytes(self.hal.tx))
        self.hal.tx.clear()
        return out

    def cmd(self, text):
        self.hal.rx += text.encode() + b"\n"
        got = self.run(150)
        return [(t, f) for t, f in got if t in ("ok", "err", "afe") or (t == "evt" and f["name"] == "set")]


@pytest.fixture
def rig(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return Rig


def test_a_protection_change_needs_the_unlock_and_is_reported(rig):
    r = rig(SIM)
    (t, f), = r.cmd("set cell_ov_mv 3600")
    assert t == "err" and f["error"].startswith("locked: cell_ov_mv") and r.app.cfg.cell_ov_mv == 3650
    assert r.cmd("set report_ms 2000")[-1][0] == "ok"  # the report rate is not a protection
    assert r.cmd("unlock packwatch") == [("ok", {"cmd": "unlock", "for_ms": 60000})]  # the documented default
    (te, ev), (to, ok) = r.cmd("set cell_ov_mv 3600")
    assert (te, ev["name"], ev["setting"], ev["old"], ev["val"]) == ("evt", "set", "cell_ov_mv", 3650, 3600)
    assert (to, ok["key"], ok["val"]) == ("ok", "cell_ov_mv", 3600)
    (t, f), = r.cmd("set cell_ov_mv 3800")  # unlocked, and still not past the hard limit
    assert t == "err" and "cell_ov_mv=3800 beyond its hard limit" in f["error"] and r.app.cfg.cell_ov_mv == 3600
    assert r.cmd("lock")[-1][0] == "ok"
    assert r.cmd("set cell_ov_mv 3550")[-1][1]["error"].startswith("locked")


def test_the_unlock_times_out_and_the_key_comes_from_the_board_file(rig):
    b = dict(SIM, unlock_key="s3cret-Key")
    r = rig(b)
    assert r.cmd("unlock packwatch")[-1][0] == "err"  # the default is not this board's key
    assert r.cmd("unlock s3cret-Key")[-1][0] == "ok"
    r.run(59000)  # still inside the 60 s
    assert r.cmd("set cell_uv_mv 2600")[-1][0] == "ok"
    r.run(1000)
    (t, f), = r.cmd("set cell_uv_mv 2700")
    assert t == "err" and f["error"].startswith("locked") and r.app.cfg.cell_uv_mv == 2600


def test_wrong_keys_lock_unlock_out_for_a_minute(rig):
    r = rig(SIM)
    for left in (2, 1):
        (t, f), = r.cmd("unlock guess%d" % left)
        assert t == "err" and "wrong unlock key" in f["error"] and "%d more" % left in f["error"]
    (t, f), = r.cmd("unlock guess0")
    assert t == "err" and "locked out for 60 s" in f["error"]
    (t, f), = r.cmd("unlock packwatch")  # the right key, during the lock-out: refused too
    assert t == "err" and "locked out" in f["error"]
    assert r.cmd("set cell_ov_mv 3600")[-1][1]["error"].startswith("locked")
    r.run(60000)
    assert r.cmd("unlock packwatch")[-1][0] == "ok"
    assert r.cmd("set cell_ov_mv 3600")[-1][0] == "ok"


# --- afe ------------------------------------------------------------------------------------------
def test_afe_reads_back_what_the_board_asked_and_seals_the_part_again(rig):
    r = rig(SIM)
    sim = r.hal.bq
    assert sim.sec == 3  # SEALED after the boot configuration
    (ta, afe), (to, ok) = r.cmd("afe")
    assert ta == "afe" and to == "ok" and ok["cmd"] == "afe"
    # the board's (sim.json: defaults for LFP, 500 uOhm shunt) thresholds in the TRM's units
    assert afe["cov_mv"] == int(74 * 50.6) and afe["cuv_mv"] == round(49 * 50.6)  # 3750 -> 74, 2500 -> 49
    assert afe["ocd1_ma"] == 44 * 2000 * 1000 // 500 and afe["occ_ma"] == 28 * 2000 * 1000 // 500
    assert afe["scd_ma"] == 200 * 1000 * 1000 // 500  # SCD table entry 200 mV (index 9) on 0.5 mOhm
    assert afe["scd_us"] == 120 and afe["otc_dc"] == 450 and afe["utd_dc"] == -200 and afe["sleep"] == 0
    assert ok["sec"] == "sealed" and sim.sec == 3
    assert ok["fet_status"] == sim.fet_status and ok["safety_a"] == 0 and ok["pf_a"] == 0
    # the loop did not notice anything: no re-configuration, reports go on
    assert not [f for t, f in r.run(2000) if t == "evt" and f["name"] in ("afe_reset", "afe_config")]


def test_afe_never_leaves_the_part_unsealed_on_a_bus_error(rig):
    r = rig(SIM)
    sim = r.hal.bq
    real = sim._subcommand
    state = {"n": 0}

    def flaky(cmd):  # the second data-memory block read fails on the bus
        if 0x9180 <= cmd < 0x9400:
            state["n"] += 1
            if state["n"] == 2:
                r.hal.i2c.fail_next(8, 50, "nack")
        return real(cmd)
    sim._subcommand = flaky
    (t, f), = r.cmd("afe")
    assert t == "err" and "the AFE did not answer" in f["error"]  # one clear line, not an internal error
    sim._subcommand = real
    # the seal in the `finally` met the same dead bus: the loop sees the changed security mode in
    # Battery Status, re-configures and seals the part again (within a few samples of the bus coming back)
    evts = [f["name"] for t, f in r.run(3000) if t == "evt"]
    assert sim.sec == 3 and "afe_reset" in evts and "afe_config" in evts
    assert not r.app.pack.fault & 32  # no `cmd` fault: a bus error is not a firmware bug


def test_host_prints_afe_as_a_table_beside_the_board_files_ask():
    from packwatch.cmd import format_frame
    from pwfw.afe_config import afe_protect

    b = copy.deepcopy(SIM)
    b["afe"]["protect"] = {"cov_mv": 3700}
    out = format_frame("afe", {"cov_mv": 3694, "otc_dc": 450}, afe_protect(b)).splitlines()
    assert out[0] == "afe" and out[1].split() == ["setting", "chip", "unit", "board", "file"]
    assert out[2].split() == ["cov_mv", "3694", "mV", "3700"]  # asked 3700, the part holds 73 x 50.6 mV
    assert out[3].split()[:2] == ["otc_dc", "450"] and out[3].split()[-1] == "450"
    assert format_frame("afe", {"cov_mv": 3694}).splitlines()[2].split() == ["cov_mv", "3694", "mV"]
