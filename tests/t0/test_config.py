"""pwfw.config: defaults per chemistry, board overrides, validation that changes nothing on error,
the calibration helper, and docs/configuration.md listing every key."""
import json
import re
from fractions import Fraction
from pathlib import Path

import pytest

from pwfw.config import KEYS, Config

ROOT = Path(__file__).resolve().parents[2]


def test_lfp_defaults():
    c = Config({"chemistry": "lfp", "cells": 16})
    assert (c.cell_ov_mv, c.cell_uv_mv) == (3650, 2500)
    assert (c.chg_tmin_dc, c.chg_tmax_dc, c.dsg_tmin_dc, c.dsg_tmax_dc) == (0, 450, -200, 600)
    assert c.chem == "lfp" and c.cells == 16


def test_nmc_defaults():
    c = Config({"chemistry": "nmc", "cells": 14})
    assert (c.cell_ov_mv, c.cell_uv_mv) == (4200, 3000)
    assert (c.chg_tmin_dc, c.chg_tmax_dc, c.dsg_tmin_dc, c.dsg_tmax_dc) == (0, 450, -200, 600)
    assert c.cells == 14


def test_every_key_is_an_int_attribute_within_its_range_for_both_chemistries():
    assert len({r[0] for r in KEYS}) == len(KEYS)
    for chem, col in (("lfp", 1), ("nmc", 2)):
        c = Config({"chemistry": chem})
        assert c.keys() == [r[0] for r in KEYS]
        for name, *_ in KEYS:
            row = [r for r in KEYS if r[0] == name][0]
            v = getattr(c, name)
            assert type(v) is int and v == row[col] and row[3] <= v <= row[4], name
            assert c.get(name) == v
        assert c.as_dict() == {r[0]: r[col] for r in KEYS}


@pytest.mark.parametrize("path", sorted(p for p in (ROOT / "boards").glob("*.json") if not p.name.endswith(".schema.json")))
def test_board_files_load(path):
    board = json.loads(path.read_text())
    c = Config(board)
    assert c.sample_ms == board["sample_ms"] and c.report_ms == board["report_ms"]
    assert c.capacity_mah == board["capacity_mah"]


def test_board_limits_override_defaults():
    c = Config({"chemistry": "lfp", "capacity_mah": 50000, "limits": {"cell_ov_mv": 3600, "oc_latch": 0}})
    assert (c.cell_ov_mv, c.oc_latch, c.capacity_mah) == (3600, 0, 50000)
    assert c.overrides() == {"cell_ov_mv": 3600, "oc_latch": 0, "capacity_mah": 50000}
    # limits that are only consistent together are applied together
    c = Config({"chemistry": "lfp", "limits": {"chg_tmin_dc": 500, "chg_tmax_dc": 550}})
    assert (c.chg_tmin_dc, c.chg_tmax_dc) == (500, 550)


@pytest.mark.parametrize(
    "board,msg",
    [
        ({"chemistry": "lead"}, "unknown chemistry"),
        ({"limits": {"nope": 1}}, "unknown key 'nope'"),
        ({"limits": {"cell_ov_mv": 9999}}, "out of range"),
        ({"limits": {"cell_ov_mv": "3600"}}, "must be an integer"),
        ({"limits": [1, 2]}, "limits must be an object"),
        ({"sample_ms": 1}, "sample_ms=1 out of range 20..10000 ms"),
    ],
)
def test_bad_board_file_is_a_clear_error(board, msg):
    with pytest.raises(ValueError, match=re.escape(msg)):
        Config(board)


def test_set_valid_value():
    c = Config({})
    c.set("cell_ov_mv", 3600)
    assert c.cell_ov_mv == 3600 and c.get("cell_ov_mv") == 3600 and c.as_dict()["cell_ov_mv"] == 3600
    c.set("oc_latch", 0)
    c.set("chg_tmin_dc", 0)  # range ends are inclusive: the LFP hard limit (no charging below 0 degC)
    c.set("dir_ma", 100000)  # and the key's own range
    c.set("i_gain_ppm", 200000)
    assert (c.oc_latch, c.chg_tmin_dc, c.dir_ma, c.i_gain_ppm) == (0, 0, 100000, 200000)


@pytest.mark.parametrize(
    "key,value,msg",
    [
        ("bogus", 1, "unknown key 'bogus'"),
        ("", 1, "unknown key ''"),
        (None, 1, "unknown key None"),
        ("cell_ov_mv", 4501, "cell_ov_mv=4501 out of range 2000..4500 mV"),
        ("cell_ov_mv", 1999, "out of range 2000..4500"),
        ("cell_ov_mv", 10**30, "out of range"),
        ("oc_latch", 2, "oc_latch=2 out of range 0..1"),
        ("oc_latch", -1, "out of range 0..1"),
        ("cell_ov_mv", "3600", "cell_ov_mv must be an integer"),
        ("cell_ov_mv", 3600.0, "must be an integer"),
        ("cell_ov_mv", True, "must be an integer"),
        ("cell_ov_mv", None, "must be an integer"),
        ("cell_ov_mv", b"3600", "must be an integer"),
        ("cell_uv_mv", 3650, "cell_uv_mv (3650) must be below cell_ov_mv (3650)"),
        ("cell_ov_mv", 2400, "cell_uv_mv (2500) must be below cell_ov_mv (2400)"),
        ("chg_tmax_dc", 0, "chg_tmin_dc (0) must be below chg_tmax_dc (0)"),
        ("dsg_tmin_dc", 700, "must be below dsg_tmax_dc"),
        ("spike_lo_mv", 5000, "must be below spike_hi_mv"),
    ],
)
def test_bad_set_raises_and_changes_nothing(key, value, msg):
    c = Config({})
    before = c.as_dict()
    with pytest.raises(ValueError, match=re.escape(msg)):
        c.set(key, value)
    assert c.as_dict() == before


def test_update_is_all_or_nothing():
    c = Config({})
    before = c.as_dict()
    with pytest.raises(ValueError):
        c.update({"cell_ov_mv": 3600, "report_ms": 5})
    assert c.as_dict() == before


def test_get_unknown_key():
    with pytest.raises(ValueError, match="unknown key"):
        Config({}).get("x")


def test_persisted_overrides_round_trip_and_skip_bad_entries():
    a = Config({})
    a.set("cell_ov_mv", 3600)
    a.set("report_ms", 5000)
    saved = json.loads(json.dumps(a.overrides()))
    b = Config({})
    assert b.load_overrides(dict(saved, gone_key=3, oc_ms="x", cell_uv_mv=3700)) == ["gone_key", "oc_ms", "cell_uv_mv"]
    assert b.as_dict() == a.as_dict()
    assert b.load_overrides("garbage") == ["<not a dict>"]
    assert b.as_dict() == a.as_dict()


@pytest.mark.parametrize("gain", [0, 1, -1, 999, -1000, 1234, 200000, -200000, 57361])
@pytest.mark.parametrize("offset", [0, 37, -250])
def test_current_calibration_matches_exact_arithmetic(gain, offset):
    c = Config({})
    c.set("i_gain_ppm", gain)
    c.set("i_offset_ma", offset)
    for raw in (0, 1, -1, 999, 1000, -1001, 12345, -98765, 150000, -150000, 2000000, -2000000):
        exact = Fraction(raw - offset) * (1 + Fraction(gain, 10**6))
        got = c.current_ma(raw)
        assert type(got) is int
        assert abs(got - exact) < 2, (raw, got, float(exact))


def test_docs_list_every_key_with_defaults_range_and_unit():
    text = (ROOT / "docs" / "configuration.md").read_text()
    rows = {}
    for line in text.splitlines():
        cells = [x.strip().strip("`") for x in line.strip().strip("|").split("|")]
        if len(cells) >= 6 and cells[0] in {r[0] for r in KEYS}:
            rows[cells[0]] = cells
    for name, lfp, nmc, lo, hi, unit in KEYS:
        assert name in rows, name
        r = rows[name]
        assert (r[1], r[2], r[3], r[4]) == (str(lfp), str(nmc), "%d..%d" % (lo, hi), unit), name
