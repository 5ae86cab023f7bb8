"""`packwatch deploy --dry-run` and `packwatch sim` refuse a bad board file before anything is staged
or started: exit code 1, one line naming the file, the key, the value and what is allowed."""
import json
from pathlib import Path

import pytest

from packwatch.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _bad(tmp_path, name="sim", **changes):
    b = json.loads((ROOT / "boards" / (name + ".json")).read_text())
    for k, v in changes.items():
        if k == "no":
            del b[v]
        elif k.startswith("limit_"):
            b["limits"][k[6:]] = v
        else:
            b[k] = v
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(b))
    return p


CASES = [
    ({"chemistry": "lpf"}, "chemistry: 'lpf' is not one of 'lfp', 'nmc'"),
    ({"no": "i2c"}, "i2c: missing (required)"),
    ({"limit_cell_ov_mv": 36500}, "limits.cell_ov_mv: 36500 is out of range 2000..4500 mV"),
    ({"limit_cell_ovv_mv": 3600}, "limits.cell_ovv_mv: unknown key (did you mean 'cell_ov_mv'?)"),
    ({"cells": 17}, "cells: 17 is out of range 3..16"),
    ({"port": "stm32"}, "port: 'stm32' is not one of 'rp2', 'esp32', 'sim'"),
]


def _one_line_error(capsys, rc, cmd, path, what):
    out, err = capsys.readouterr()
    assert rc == 1
    assert out == ""  # nothing staged, no port printed
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0] == "packwatch %s: error: %s: %s" % (cmd, path, what)


@pytest.mark.parametrize("changes,what", CASES)
def test_deploy_dry_run_refuses_a_bad_board_file(tmp_path, capsys, changes, what):
    p = _bad(tmp_path, **changes)
    rc = main(["deploy", "--port", "/dev/null", "--board-file", str(p), "--dry-run"])
    _one_line_error(capsys, rc, "deploy", p, what)


def test_deploy_dry_run_refuses_sda_as_a_pin_name(tmp_path, capsys):
    b = json.loads((ROOT / "boards" / "pico.json").read_text())
    b["i2c"]["sda"] = "GP4"
    p = tmp_path / "pico-typo.json"
    p.write_text(json.dumps(b))
    rc = main(["deploy", "--port", "/dev/null", "--board-file", str(p), "--dry-run"])
    _one_line_error(capsys, rc, "deploy", p, "i2c.sda: 'GP4' is not an integer")


@pytest.mark.parametrize("changes,what", CASES[:3])
def test_sim_refuses_a_bad_board_file(tmp_path, capsys, changes, what):
    p = _bad(tmp_path, **changes)
    rc = main(["sim", "--board-file", str(p), "--duration", "1", "--fs", str(tmp_path / "flash")])
    _one_line_error(capsys, rc, "sim", p, what)
    assert not (tmp_path / "flash" / "main.py").exists()  # nothing flashed


def test_sim_refuses_a_bad_board_json_in_its_flash_folder(tmp_path, capsys):
    fs = tmp_path / "flash"
    fs.mkdir()
    b = json.loads((ROOT / "boards" / "sim.json").read_text())
    del b["ntc"]
    (fs / "board.json").write_text(json.dumps(b))
    (fs / "main.py").write_text("from pwfw.app import main\nmain()\n")
    rc = main(["sim", "--fs", str(fs), "--duration", "1"])
    _one_line_error(capsys, rc, "sim", fs / "board.json", "ntc: missing (required)")


def test_deploy_dry_run_stages_a_good_board_file_and_the_one_main_py(tmp_path, capsys):
    from packwatch.staging import stage
    from packwatch.boardfile import load_board

    files = stage(load_board(ROOT / "boards" / "pico.json"), tmp_path, source=True)
    assert Path(files["main.py"]).read_bytes() == (ROOT / "firmware" / "main.py").read_bytes()
    assert json.loads(Path(files["board.json"]).read_text()) == json.loads((ROOT / "boards" / "pico.json").read_text())
    rc = main(["deploy", "--port", "/dev/null", "--board", "pico", "--dry-run", "--source"])
    assert rc == 0 and "board.json" in capsys.readouterr().out
