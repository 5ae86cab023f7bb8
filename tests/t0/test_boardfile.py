"""Board files: the one schema (boards/board.schema.json) checked on the host by packwatch.boardfile,
its mirror in the firmware (pwfw.boot.check_board), and what the firmware does at start-up with a
bad board file or a start-up that keeps crashing (pwfw.app.main, pwfw.boot.start)."""
import copy
import json
from pathlib import Path

import pytest

from hil.hal_fake import FakeHal
from packwatch import boardfile
from packwatch.protocol import Decoder
from pwfw import app as A
from pwfw import boot
from pwfw.boot import check_board
from pwfw.config import Config

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted(p for p in (ROOT / "boards").glob("*.json") if not p.name.endswith(".schema.json"))


def board(name="pico"):
    return json.loads((ROOT / "boards" / (name + ".json")).read_text())


def test_committed_schema_is_the_generated_one():
    """The limits, chemistry and cell count of the schema come from pwfw.config: a key added to KEYS
    (or a range changed) without `python -m packwatch.boardfile --write-schema` fails here."""
    committed = json.loads((ROOT / "boards" / "board.schema.json").read_text())
    assert committed == boardfile.generated_schema(committed)
    from pwfw.config import KEYS
    assert set(committed["properties"]["limits"]["properties"]) == {r[0] for r in KEYS}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_board_file_is_valid(path):
    b = boardfile.load_board(path)
    check_board(b, path.name)  # the firmware's own check agrees
    Config(b)


def _set(path, value):
    def f(b):
        d = b
        for k in path[:-1]:
            d = d[k]
        d[path[-1]] = value
    return f


def _drop(path):
    def f(b):
        d = b
        for k in path[:-1]:
            d = d[k]
        del d[path[-1]]
    return f


# (board, mutation, the key named, text the message must hold, whether the firmware checks it too).
# Allowed values come from outside this code: chemistries and ports of the project (README), 3..16
# series cells (BQ76952 data sheet), RP2040 GPIO 0-29 with ADC on 26-28 (RP2040 data sheet), ESP32 ADC1
# on GPIO 32-39 and flash on 6-11 (ESP32 technical reference), INA228 addresses 0x40-0x4F (INA228 data
# sheet); key ranges as docs/configuration.md lists them.
BAD = [
    ("pico", _set(["chemistry"], "lpf"), "chemistry", "'lpf' is not one of 'lfp', 'nmc'", True),
    ("pico", _drop(["i2c"]), "i2c", "missing (required)", True),
    ("pico", _drop(["ntc"]), "ntc", "missing (required)", True),
    ("pico", _drop(["chemistry"]), "chemistry", "missing (required)", True),
    ("pico", _set(["limits", "cell_ov_mv"], 36500), "limits.cell_ov_mv", "36500 is out of range 2000..4500 mV", True),
    ("pico", _set(["limits", "cell_ov"], 3600), "limits.cell_ov", "unknown key", True),
    ("pico", _set(["cells"], 17), "cells", "17 is out of range 3..16", True),
    ("pico", _set(["cells"], 2), "cells", "2 is out of range 3..16", True),
    ("pico", _set(["cells"], 16.0), "cells", "16.0 is not an integer", True),
    ("pico", _set(["i2c", "sda"], "GP4"), "i2c.sda", "'GP4' is not an integer", True),
    ("pico", _set(["i2c", "sda"], 4.0), "i2c.sda", "4.0 is not an integer", True),
    ("pico", _set(["relay_pin"], True), "relay_pin", "is not an integer", True),
    ("pico", _set(["ntc", "pins"], [26, "27"]), "ntc.pins[1]", "'27' is not an integer", True),
    ("pico", _set(["port"], "stm32"), "port", "'stm32' is not one of 'rp2', 'esp32', 'sim'", True),
    ("pico", _set(["current", "source"], "shunt"), "current.source", "'shunt' is not one of 'bq76952', 'ina228'",
     True),
    ("pico", _set(["limits"], [1]), "limits", "is not an object", True),
    ("pico", _set(["sample_ms"], 5), "sample_ms", "5 is out of range 20..10000 ms", True),
    # LFP cells are charged to 3.65 V: a 4.2 V over-voltage limit is the NMC one, on the wrong pack
    ("pico", _set(["limits", "cell_ov_mv"], 4200), "limits.cell_ov_mv", "4200 is out of range 3400..3750 mV for lfp",
     True),
    ("pico", lambda b: b.update(chemistry="nmc", cells=14, limits={"cell_uv_mv": 2000}), "limits.cell_uv_mv", "2000 is out of range 2500..3500 mV for nmc", True),
    # what only the schema checks (the firmware leaves them to the HAL)
    ("pico", _set(["relay_pn"], 7), "relay_pn", "unknown key (did you mean 'relay_pin'?)", False),
    ("pico", _set(["i2c", "sdaa"], 4), "i2c.sdaa", "unknown key", False),
    ("pico", _set(["ntc", "pins"], [5, 27, 28]), "ntc.pins[0]", "5 is not one of 26, 27, 28", False),
    ("pico", _set(["i2c", "scl"], 30), "i2c.scl", "30 is out of range 0..29", False),
    ("pico", _set(["arch"], "xtensawin"), "arch", "'xtensawin' is not one of 'armv6m', 'armv7emsp' for port rp2", False),
    ("esp32", _set(["ntc", "pins"], [36, 39, 4]), "ntc.pins[2]", "4 is not one of 32, 33, 34", False),
    ("esp32", _set(["relay_pin"], 7), "relay_pin", "7 is not one of null, 0, 1, 2, 3, 4, 5, 12", False),
    ("esp32", _set(["i2c", "sda"], 36), "i2c.sda", "36 is not one of", False),  # GPIO36 is input-only
    ("pico", _set(["current"], {"source": "ina228", "max_ma": 1000}), "current.shunt_uohm", "missing (required)",
     False),
    ("pico", _set(["current", "ina228_addr"], 0x50), "current.ina228_addr", "80 is out of range 64..79", False),
    ("pico", _set(["ntc", "pins"], [26, 27, 28, 26]), "ntc.pins", "has 4 items, more than 3", False),
    # the current's full scale must clear the highest over-current limit by half (pwfw.ina228.check_headroom):
    # the old esp32.json (150 A full scale, 150 A limit) read a true -200 A as -150 A
    # (a hard limit since issue 12: the over-current limits can never be set past max_ma / 1.5)
    ("esp32", _set(["current", "max_ma"], 150000), "limits",
     "oc_dsg_ma=150000 beyond its hard limit 100..100000 mA (board current.max_ma / 1.5)", False),
    # and never past the AFE's own OCD1 (esp32.json: 176 A), which acts as the backstop
    ("esp32", _set(["limits", "oc_dsg_ma"], 250000), "limits",
     "oc_dsg_ma=250000 beyond its hard limit 100..176000 mA (the AFE's ocd1_ma 176000)", False),
    ("esp32", _set(["current", "shunt_uohm"], 1000), "current.max_ma", "past the INA228's +-163840 uV", False),
    ("pico", _set(["cell_map"], [1, 2, 3]), "cell_map", "[1, 2, 3] must list 16 increasing", False),
    ("pico", _set(["limits", "chg_tmin_dc"], 460), "limits", "chg_tmin_dc (460) must be below chg_tmax_dc (450)", False),
]


@pytest.mark.parametrize("name,mutate,key,what,fw", BAD, ids=[c[2] + ":" + c[3][:24] for c in BAD])
def test_bad_board_file_names_the_key_the_value_and_what_is_allowed(tmp_path, name, mutate, key, what, fw):
    b = board(name)
    mutate(b)
    path = tmp_path / "x.json"
    path.write_text(json.dumps(b))
    with pytest.raises(boardfile.BoardFileError) as e:
        boardfile.load_board(path)
    msg = str(e.value)
    assert msg.startswith("%s: %s: " % (path, key)), msg
    assert what in msg, msg
    assert "\n" not in msg
    if fw:  # the firmware's check says the same thing, word for word
        with pytest.raises(ValueError) as e2:
            check_board(copy.deepcopy(b), str(path))
        host = msg.replace(" (did you mean 'cell_ov_mv'?)", "")
        assert str(e2.value) == host.replace("relay_pin: true", "relay_pin: True")


@pytest.mark.parametrize("text,what", [("{not json", "not valid JSON: Expecting property name"),
                                       ("[1, 2]", "(top level): [1, 2] is not an object")])
def test_not_a_board_file_at_all(tmp_path, text, what):
    p = tmp_path / "x.json"
    p.write_text(text)
    with pytest.raises(boardfile.BoardFileError, match=r"x\.json: " + what.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")):
        boardfile.load_board(p)
    with pytest.raises(boardfile.BoardFileError, match="no such board file"):
        boardfile.load_board(tmp_path / "nope.json")


def test_per_chemistry_cell_limits_hold_at_run_time_too():
    lfp = Config({"chemistry": "lfp", "cells": 16})
    with pytest.raises(ValueError, match=r"cell_ov_mv=4200 beyond its hard limit 3400\.\.3750 mV \(lfp cells\)"):
        lfp.set("cell_ov_mv", 4200)  # the NMC value on an LFP pack
    assert lfp.cell_ov_mv == 3650
    nmc = Config({"chemistry": "nmc", "cells": 14})
    nmc.set("cell_ov_mv", 4200)
    with pytest.raises(ValueError, match="nmc cells"):
        nmc.set("cell_ov_mv", 3650)


# --- start-up: pwfw.app.main ------------------------------------------------------------------------
def _frames(data):
    return Decoder().feed(bytes(data))


def test_bad_board_json_gives_one_err_frame_and_returns_to_the_repl(tmp_path, monkeypatch, capsysbinary):
    monkeypatch.chdir(tmp_path)
    b = board("sim")
    b["chemistry"] = "lpf"
    (tmp_path / "board.json").write_text(json.dumps(b))
    built = []
    monkeypatch.setattr(A, "App", lambda hal: built.append(hal))
    A.main()  # returns (to the REPL) instead of building a HAL, an App, or resetting
    assert built == []
    out = capsysbinary.readouterr().out
    assert out.count(b"\n") == 1
    (topic, f), = _frames(out)
    assert topic == "err" and f["cmd"] == "boot"
    assert f["error"].startswith("board.json: chemistry: 'lpf' is not one of 'lfp', 'nmc'")
    assert not (tmp_path / boot.BOOT_FILE).exists()  # a config error writes nothing to flash


def test_missing_board_json_is_said_too(tmp_path, monkeypatch, capsysbinary):
    monkeypatch.chdir(tmp_path)
    A.main()
    (topic, f), = _frames(capsysbinary.readouterr().out)
    assert topic == "err" and f["error"].startswith("board.json: missing or unreadable")


def test_start_up_crashes_reset_twice_then_stay_at_the_repl(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    hal = FakeHal(board("sim"))
    real_init = A.App.__init__

    def broken(self, hal):
        raise ZeroDivisionError("injected")
    monkeypatch.setattr(A.App, "__init__", broken)
    for n in (1, 2):
        A.main(hal)
        assert hal.resets == n  # a reset after a pause, as before
    hal.tx.clear()
    A.main(hal)  # the third in a row: no reset, one #err, back to the REPL
    assert hal.resets == 2
    (topic, f), = _frames(hal.tx)
    assert topic == "err" and f["cmd"] == "boot" and "crashed 3 times in a row" in f["error"]
    assert "ZeroDivisionError" in f["error"]
    hal.tx.clear()
    A.main(hal)  # the next boot (a watchdog reset, a power cycle) stays too, without starting anything
    assert hal.resets == 2 and "crashed 3 times" in _frames(hal.tx)[0][1]["error"]
    # what `packwatch deploy` does (removes the count), then a firmware that starts: the count is gone
    (tmp_path / boot.BOOT_FILE).unlink()
    monkeypatch.setattr(A.App, "__init__", real_init)
    monkeypatch.setattr(A.App, "run", lambda self: None)
    A.main(hal)
    assert hal.resets == 2 and not (tmp_path / boot.BOOT_FILE).exists()


def test_a_good_start_clears_a_count_below_the_limit(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / boot.BOOT_FILE).write_text("2\nZeroDivisionError('x')")
    monkeypatch.setattr(A.App, "run", lambda self: None)
    A.main(FakeHal(board("sim")))
    assert not (tmp_path / boot.BOOT_FILE).exists()
