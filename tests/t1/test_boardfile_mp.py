"""The firmware's board-file check (pwfw.boot.check_board) and its start-up with a bad board.json,
under the real MicroPython: the same messages as the host's schema check (jsonschema), and one `#err`
frame, then main() returns (to the REPL) instead of resetting."""
import json
from pathlib import Path

import pytest

from packwatch import boardfile
from packwatch.protocol import Decoder

ROOT = Path(__file__).resolve().parents[2]

CASES = [
    ("chemistry", "lpf"),
    ("cells", 17),
    ("cells", "16"),
    ("i2c", None),
    ("ntc", None),
    ("i2c.sda", "GP4"),
    ("i2c.sda", 4.0),
    ("port", "stm32"),
    ("limits.cell_ov_mv", 36500),
    ("limits.cell_ov_mv", 4200),  # an NMC limit on the LFP sim board
    ("limits.cell_ovmv", 3600),
    ("sample_ms", 1),
]


def _mutated(key, value):
    b = json.loads((ROOT / "boards" / "sim.json").read_text())
    *parents, last = key.split(".")
    d = b
    for p in parents:
        d = d[p]
    if value is None:
        del d[last]
    else:
        d[last] = value
    return b


def test_firmware_check_matches_the_schema_check_under_micropython(mp, tmp_path):
    boards = [_mutated(k, v) for k, v in CASES]
    expected = []
    for b in boards:
        with pytest.raises(boardfile.BoardFileError) as e:
            boardfile.check_board(b, "board.json")
        expected.append(str(e.value).replace(" (did you mean 'cell_ov_mv'?)", ""))
    (tmp_path / "boards.json").write_text(json.dumps(boards))
    out = mp.run("""
import json
from pwfw.boot import check_board
for b in json.load(open("boards.json")):
    try:
        check_board(b)
        print("PASSED")
    except ValueError as e:
        print(e)
""", cwd=str(tmp_path))
    assert out.splitlines() == expected


def test_bad_board_json_at_start_up_prints_one_err_frame_and_returns(mp, tmp_path):
    (tmp_path / "board.json").write_text(json.dumps(_mutated("chemistry", "lpf")))
    out = mp.run("from pwfw.app import main\nmain()\nprint('AT THE REPL')\n", cwd=str(tmp_path))
    lines = out.splitlines()
    assert lines[-1] == "AT THE REPL" and len(lines) == 2, out
    d = Decoder()
    (topic, f), = d.feed(out.encode())
    assert topic == "err" and f["cmd"] == "boot"
    assert f["error"].startswith("board.json: chemistry: 'lpf' is not one of 'lfp', 'nmc'")
    assert d.errors == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["board.json"]  # nothing written to flash
