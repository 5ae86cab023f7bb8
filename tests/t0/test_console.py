"""T0: the serial console as people use it (docs/protocol.md, "Host → device commands"): line ends from
terminals, `soc N` read back exactly, `zero` only for what can be an offset, the power path in `rep`,
and the current calibration's sign, through the whole App on the simulated chips."""
import json
from pathlib import Path

import pytest

from hil.hal_fake import FakeHal
from pwfw.app import App
from pwfw.protocol import LineReader
from pwfw.soc import Estimator, load_model
from tests.support import frame_runner

ROOT = Path(__file__).resolve().parents[2]
V = json.loads((ROOT / "docs" / "protocol_vectors.json").read_text())
ERRORS = {LineReader.TOO_LONG: "line too long", LineReader.BAD_BYTES: "bad bytes"}


def read_lines(data):
    r = LineReader()
    out = []
    for b in data:
        if r.feed(b):
            text, err = r.take()
            out.append([text, None if not err else ERRORS[LineReader.TOO_LONG if err & LineReader.TOO_LONG else
                                                        LineReader.BAD_BYTES]])
    return out


@pytest.mark.parametrize("vec", V["line_input"], ids=lambda v: v["why"][:40])
def test_line_reader_vectors(vec):
    assert read_lines(vec["bytes"].encode("latin-1")) == vec["lines"]


def test_line_reader_vectors_all_in_one_stream():
    # the ends of one vector must not leak into the next: each vector ends on a line end
    data = b"".join(v["bytes"].encode("latin-1") for v in V["line_input"])
    want = [ln for v in V["line_input"] for ln in v["lines"]]
    assert read_lines(data) == want


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the store's slot files go to the test's folder
    board = json.loads((ROOT / "boards" / "sim.json").read_text())
    hal = FakeHal(board)
    a = App(hal)
    run = frame_runner(a, hal)

    def send(data):
        """Send raw bytes; the replies (ok/err/cfg) they got within 300 ms."""
        hal.rx += data
        n = len(a.frames)
        run(300)
        return [f for f in a.frames[n:] if f[0] in ("ok", "err", "cfg")]

    a.run_ms, a.send, a.fake = run, send, hal
    a.run_ms(1000)
    return a


@pytest.mark.parametrize("end", [b"\r", b"\n", b"\r\n"], ids=["CR", "LF", "CRLF"])
def test_every_line_end_runs_a_command_once(app, end):
    replies = app.send(b"ping" + end + b"rate 500" + end + b"ping " + end)
    assert [(t, f["cmd"]) for t, f in replies] == [("ok", "ping"), ("ok", "rate"), ("ok", "ping")]


def test_cr_then_next_command_is_not_glued_to_it(app):
    replies = app.send(b"ping\rset\n")  # was parsed as "pingset"
    assert [(t, f["cmd"]) for t, f in replies] == [("ok", "ping"), ("err", "set")]
    assert "usage" in replies[1][1]["error"]


def test_crlf_after_a_bad_line_gives_one_error(app):
    replies = app.send(b"y" * 200 + b"\r\n" + b"\xff\r\n" + b"\r\n\r\n")
    assert [f["error"] for t, f in replies] == ["line too long", "bad bytes"]


def deltas(n):
    # per-cell SoC deltas (ppm, mean 0) as a persisted state carries them: a pack whose cells
    # spread over 2.3 %
    d = [(k * 7919) % 23000 - 11000 for k in range(n)]
    m = sum(d) // n
    return [x - m for x in d]


@pytest.mark.parametrize("chem,n", [("lfp", 16), ("nmc", 14), ("lfp", 1)])
def test_set_soc_reads_back_exactly_for_every_value(chem, n):
    e = Estimator(load_model(str(ROOT / "firmware" / "pwfw" / "models" / (chem + ".json"))), n, 100000)
    for cd in ([0] * n, deltas(n)):
        st = e.state()
        st.update(cd=cd if n > 1 else [0], cp=[0] * n)
        e.restore(st)
        got = []
        for pm in range(1001):
            e.set_soc(pm)
            got.append(e.soc_pm)
        assert got == list(range(1001))


def test_soc_command_round_trips_with_cell_spread(app):
    app.est.restore(dict(app.est.state(), cd=deltas(16), cp=[0] * 16))
    for pm in (0, 1, 249, 250, 251, 500, 731, 999, 1000):
        (t, f), = app.send(b"soc %d\n" % pm)
        assert (t, f["soc_pm"]) == ("ok", pm)


def reports(app, ms):
    n = len(app.frames)
    app.run_ms(ms)
    return [f for t, f in app.frames[n:] if t == "rep"]


def test_zero_refuses_a_load_and_names_it(app):
    # 320 mA through a closed path is a load, not an offset of either sensor (docs/configuration.md)
    app.fake.set(i_ma=-320)
    app.run_ms(500)
    (t, f), = app.send(b"zero\n")
    assert t == "err" and "-320 mA" in f["error"] and "zero_max_ma" in f["error"]
    assert app.cfg.i_offset_ma == 0
    assert reports(app, 2000)[-1]["i_ma"] == -320  # still reported as the load it is


@pytest.mark.parametrize("offset,ok", [(30, True), (-30, True), (50, True), (-50, True), (60, False), (-60, False)])
def test_zero_takes_what_an_offset_can_be(app, offset, ok):
    # the default zero_max_ma is 50 mA; readings come in the CC2's 10 mA steps on this board
    app.fake.set(i_ma=offset)
    app.run_ms(500)
    (t, f), = app.send(b"zero\n")
    assert t == ("ok" if ok else "err")
    if ok:
        assert f["offset_ma"] == offset and app.cfg.i_offset_ma == offset
        assert reports(app, 2000)[-1]["i_ma"] == 0
    else:
        assert str(offset) + " mA" in f["error"] and app.cfg.i_offset_ma == 0


def test_zero_limit_is_a_config_key(app):
    app.fake.set(i_ma=-320)
    app.run_ms(500)
    assert app.send(b"set zero_max_ma 400\n")[0][0] == "ok"
    (t, f), = app.send(b"zero\n")
    assert (t, f["offset_ma"]) == ("ok", -320)


def open_path_by_over_voltage(app):
    cells = [3300] * 16
    cells[5] = 3700  # above cell_ov_mv 3650 for longer than cell_ov_ms: the relay opens
    app.fake.set(cells=cells)
    app.run_ms(2000)
    assert app.fake.relay_on is False


def test_zero_takes_any_reading_while_the_power_path_is_open(app):
    open_path_by_over_voltage(app)
    app.fake.set(i_ma=-3000)  # no current can flow: this is the sensor's offset, however large
    app.run_ms(500)
    (t, f), = app.send(b"zero\n")
    assert (t, f["offset_ma"]) == ("ok", -3000) and app.cfg.i_offset_ma == -3000


def test_rep_carries_the_power_path_state(app):
    r = reports(app, 2000)[-1]
    assert r["fet"] & 3 == 3 and app.fake.relay_on is True  # bit 0 charge, bit 1 discharge: both closed
    assert list(r)[-3:] == ["fet", "prot", "bal"]  # after `fault`, as docs/protocol.md lists the fields
    open_path_by_over_voltage(app)
    assert reports(app, 1000)[-1]["fet"] & 3 == 0
    app.fake.set(cells=[3300] * 16)  # released below cell_ov_mv - hysteresis: closes again
    app.run_ms(3000)
    assert app.fake.relay_on is True and reports(app, 1000)[-1]["fet"] & 3 == 3


@pytest.mark.parametrize("gain,i_ma,want", [
    (10000, 20000, 20200),    # +1 %: 20 A reads 20.2 A
    (-10000, 20000, 19800),   # -1 %: 19.8 A
    (10000, -20000, -20200),  # the gain scales a discharge the same way: more negative
    (-25000, -40000, -39000),
])
def test_current_gain_sign_end_to_end(app, gain, i_ma, want):
    # docs/configuration.md: i = (raw - i_offset_ma) * (1 + i_gain_ppm / 1e6); CC2 reads exact 10 mA steps.
    # The gain comes from `cal current`: a clamp meter reading `want` where the sensor reads `i_ma`.
    app.fake.set(i_ma=i_ma)
    app.run_ms(2000)
    (t, f), = app.send(b"cal current %s\n" % ("%.3f" % (want / 1000)).encode())
    assert (t, f["gain_ppm"]) == ("ok", gain)
    assert reports(app, 2000)[-1]["i_ma"] == want
