"""replay re-decodes a capture to the same CSV; live --once renders a screen; Board API."""
import io
import os
import time

import numpy as np
import pytest

from packwatch.api import Board, CommandError, open_log
from packwatch.live import live, render
from packwatch.replay import replay
from packwatch.logger import Logger
from tests.support import FakeDevice


def test_replay_matches_live_log(tmp_path):
    dev = FakeDevice(n=30, extras={5: "badcrc", 9: "noise"}).start()
    try:
        lg = Logger(dev.port, tmp_path / "out", duration=1.2)
        lg.run()
    finally:
        dev.close()
    csv = [p for p in lg.files.created if p.endswith(".csv")][0]
    raw = [p for p in lg.files.created if p.endswith(".raw")][0]
    s = replay(raw, str(tmp_path / "re.csv"))
    a, b = open_log(csv), open_log(tmp_path / "re.csv")
    assert len(a) == len(b) == 29 and s.crc_errors == 1 and s.gaps == 1
    for col in ("t_s", "current_a", "seq", "soc_pct", "alarm"):
        np.testing.assert_array_equal(a.cols[col], b.cols[col])
    np.testing.assert_array_equal(a.cells_v, b.cells_v)


def test_replay_refuses_other_format(tmp_path):
    from packwatch.protocol import encode_frame
    cap = tmp_path / "c.raw"
    cap.write_bytes(b"1.0 " + encode_frame("hdr", {"fw": "3.0", "fmt": 3}))
    with pytest.raises(ValueError, match="format 3.*format 1"):
        replay(str(cap), str(tmp_path / "x.csv"))


def test_render_screen():
    rep = {"seq": 1, "ms": 5, "cell_mv": [3300, 3350, None, 3200], "stack_mv": 13100, "i_ma": 2500,
           "t_dc": [251, None], "soc_pm": 655, "sig_pm": 21, "alarm": 0b1000001, "fault": 8}
    s = render(rep, {"chem": "lfp", "board": "pico", "fw": "0.1.0", "uid": "u1"}, width=80)
    assert "cell02   3.350 V" in s and "max" in s.splitlines()[2]
    assert "spread  150 mV" in s and "+2.50 A" in s and "(charging)" in s  # not "discharging"
    assert "65.5 % +/- 2.1" in s and "cell_ov imbalance" in s and "ntc" in s and "fault" in s


def test_live_once_and_board_api(tmp_path):
    dev = FakeDevice(n=200, period=0.02).start()
    try:
        out = io.StringIO()
        assert live(dev.port, once=True, out=out, timeout=5) == 0
        assert "cell04" in out.getvalue() and "SoC" in out.getvalue()
        with Board(dev.port, timeout=5) as b:
            assert b.command("rate 500") == {"cmd": "rate", "rate_ms": 500}
            with pytest.raises(CommandError):
                b.command("frobnicate")
            msgs = b.read(3)
            assert [t for t, _ in msgs] == ["rep"] * 3
            seqs = [f["seq"] for _, f in msgs]
            assert seqs == list(range(seqs[0], seqs[0] + 3))
    finally:
        dev.close()
