"""T0: the board file names the HAL (`hal`, default pwfw.hal_board); the firmware never names the
simulator (docs/configuration.md, pwfw.boot.make_hal)."""
import json

from pwfw import boot
from tests.support import ROOT


def _board(tmp_path, monkeypatch, **changes):
    board = json.loads((ROOT / "boards" / "sim.json").read_text())
    board.update(changes)
    (tmp_path / "board.json").write_text(json.dumps(board))
    monkeypatch.chdir(tmp_path)
    return board


def test_the_board_file_names_the_hal(tmp_path, monkeypatch):
    # a HAL the firmware has never heard of: a module with a class Hal, named by the board file
    (tmp_path / "my_test_hal.py").write_text("class Hal:\n    def __init__(self, board):\n        self.board = board\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    board = _board(tmp_path, monkeypatch, hal="my_test_hal")
    hal = boot.make_hal()
    assert type(hal).__module__ == "my_test_hal"
    assert hal.board == board


def test_a_hal_that_does_not_import_is_one_err_line_at_the_repl(tmp_path, monkeypatch, capsys):
    _board(tmp_path, monkeypatch, hal="no_such_hal_module")
    assert boot.start() is None  # the board stays at the REPL: no crash, no reset loop
    out = capsys.readouterr().out
    assert out.count("#err") == 1, out
    assert "hal" in out and "no_such_hal_module" in out, out
    assert not (tmp_path / boot.BOOT_FILE).exists()  # not counted as a start-up crash


def test_the_sim_board_file_names_hal_sim_and_the_real_ones_none():
    boards = {p.stem: json.loads(p.read_text()) for p in (ROOT / "boards").glob("*.json") if p.stem != "board.schema"}
    assert boards["sim"]["hal"] == "hal_sim"
    assert "hal" not in boards["pico"] and "hal" not in boards["esp32"]  # default: pwfw.hal_board
