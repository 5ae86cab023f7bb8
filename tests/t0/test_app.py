"""T0: the firmware application (pwfw.app.App) under CPython, with the register-level chip
simulations (hil/chips) on a fake I2C bus and a fake clock and serial port — no plant, no pty.
The same App runs on the virtual board in T2; here each behaviour is poked directly and fast."""
import json
import os
from pathlib import Path

import pytest

from hil.hal_fake import FakeHal
from packwatch.protocol import Decoder
from pwfw.app import App
from tests.support import frame_runner

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the store's slot files go to the board's (here: the test's) folder
    board = json.loads((ROOT / "boards" / "sim.json").read_text())
    hal = FakeHal(board)
    a = App(hal)
    run = frame_runner(a, hal)

    def cmd(text):
        hal.rx += text.encode() + b"\n" if isinstance(text, str) else text
        n = len(a.frames)
        run(200)
        replies = [f for f in a.frames[n:] if f[0] in ("ok", "err", "cfg")]
        assert replies, "no reply to %r" % (text,)
        return replies[-1]

    a.run_ms, a.cmd, a.fake = run, cmd, hal
    return a


def test_reports_scale_and_schedule(app):
    app.fake.set(cells=[3300 + k for k in range(16)], i_ma=-12345)
    frames = app.run_ms(4900)  # the first report comes with the first sample, then one a second
    assert frames[0][0] == "hdr" and frames[0][1]["cells"] == 16
    reps = [f for t, f in frames if t == "rep"]
    assert len(reps) == 5 and [r["ms"] for r in reps] == [reps[0]["ms"] + 1000 * k for k in range(5)] and [r["seq"] for r in reps] == sorted(r["seq"] for r in reps)
    r = reps[-1]
    assert all(abs(v - (3300 + k)) <= 4 for k, v in enumerate(r["cell_mv"]))  # 1 mV noise
    assert abs(r["stack_mv"] - sum(3300 + k for k in range(16))) <= 20
    assert abs(r["i_ma"] - -12345) <= 10  # CC2 counts 10 mA for a 150 A board
    assert all(abs(t - 250) <= 10 for t in r["t_dc"])
    assert app.fake.relay_on is True


def test_commands_change_config_and_bad_ones_change_nothing(app):
    app.run_ms(1000)
    before = app.cmd("config")[1]
    for bad in ("set cell_ov_mv 9", "set cell_uv_mv 3700", "set nope 1", "rate x", "soc", "frobnicate",
                b"\xff\xfe\n", b"y" * 300 + b"\n"):
        t, f = app.cmd(bad)
        assert t == "err" and f["error"], bad
    assert app.cmd("config")[1] == before
    assert app.cmd("unlock packwatch")[0] == "ok"  # a protection setting (sim.json: the default key)
    assert app.cmd("set cell_ov_mv 3600") == ("ok", {"cmd": "set", "key": "cell_ov_mv", "val": 3600})
    assert app.cfg.cell_ov_mv == 3600


def test_over_voltage_opens_relay_and_releases(app):
    app.run_ms(2000)
    cells = [3300] * 16
    cells[3] = 3700
    app.fake.set(cells=cells, i_ma=20000)
    app.run_ms(3000)
    ev = [f for t, f in app.frames if t == "evt" and f["name"] == "cell_ov"]
    assert ev and ev[0]["on"] == 1 and ev[0]["idx"] == 3
    assert app.fake.relay_on is False
    cells[3] = 3620  # inside the 50 mV hysteresis: held
    app.fake.set(cells=cells, i_ma=0)
    app.run_ms(3000)
    assert app.prot.alarm & 1
    cells[3] = 3500
    app.fake.set(cells=cells)
    app.run_ms(3000)
    assert not app.prot.alarm & 1 and app.fake.relay_on is True


def test_i2c_nacks_set_the_afe_fault_and_the_loop_goes_on(app):
    app.run_ms(1000)
    app.fake.i2c.fail_next(8, 60, "nack")  # each sample spends 3 tries on its one AFE read (TS reads: 1 Hz)
    app.run_ms(500)
    assert app.pack.fault & 1
    n = len(app.frames)
    app.run_ms(3000)
    assert not app.pack.fault & 1
    assert len([f for t, f in app.frames[n:] if t == "rep"]) == 3  # reports never stopped
    ev = [f for t, f in app.frames if t == "evt" and f["name"] == "afe"]
    assert [e["on"] for e in ev] == [1, 0]
    assert app.fake.relay_on is True  # recovered: protection is back


def test_state_survives_a_restart(app):
    app.run_ms(2000)
    assert app.cmd("soc 731")[0] == "ok"
    assert app.cmd("unlock packwatch")[0] == "ok"
    assert app.cmd("set cell_uv_mv 2600")[0] == "ok"
    assert app.cmd("save")[0] == "ok"
    again = App(app.fake)
    assert again.boots == app.boots + 1
    assert abs(again.est.soc_pm - 731) <= 2 and again.cfg.cell_uv_mv == 2600
    assert not again.pack.fault


def test_corrupt_state_files_are_flagged_not_fatal(app):
    app.run_ms(2000)
    for name in ("state_a.bin", "state_b.bin"):
        with open(name, "wb") as f:
            f.write(os.urandom(300))
    again = App(app.fake)
    assert again.pack.fault & 16  # `store`: state lost, started as on a first boot
    assert again.boots == 1


@pytest.mark.parametrize("exc,cause", [(MemoryError, "memory"), (ZeroDivisionError, "crash")])
def test_a_crash_restarts_the_board_and_the_header_says_why(app, monkeypatch, exc, cause):
    import pwfw.app as A

    def boom(self):
        raise exc("injected")
    monkeypatch.setattr(A.App, "run", boom)
    resets = app.fake.resets
    A.main(app.fake)  # what main.py runs: must not raise, must reset the board
    assert app.fake.resets == resets + 1
    app.fake.tx.clear()
    again = A.App(app.fake)
    assert again.reset_cause == cause
    hdr = Decoder().feed(bytes(app.fake.tx))[0]
    assert hdr[0] == "hdr" and hdr[1]["reset"] == cause
    assert A.App(app.fake).reset_cause == "power"  # the marker is read once
