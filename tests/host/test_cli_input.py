"""Bad input to the host commands: outputs that are inputs, wrong files, out-of-range numbers, missing
ports. Each gets one clear line and a non-zero exit, never a traceback, and no input is ever lost."""
import argparse
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from packwatch import cli, ports
from packwatch.files import atomic_output
from packwatch.live import render
from packwatch.logcsv import LogWriter
from packwatch.logger import Logger
from packwatch.protocol import encode_frame

ROOT = Path(__file__).resolve().parents[2]


def run(argv, capsys):
    """`packwatch ARGV` in this process: (rc, stderr). An exception escaping main fails the test."""
    try:
        rc = cli.main([str(a) for a in argv])
    except SystemExit as e:  # argparse
        rc = e.code
    return rc, capsys.readouterr().err


def one_line(err):
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("usage:") and not ln.startswith(" ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def small_log(path, rows=5):
    with LogWriter(str(path), 2, extra_cols=()) as w:
        for k in range(rows):
            w.write_row(float(k), -1.0, [3.30, 3.31])
    return path


def capture(path, fmt=1):
    frames = [encode_frame("hdr", {"fw": "0.1.0", "fmt": fmt, "board": "t", "chem": "lfp", "cells": 2,
                                   "boots": 1, "uid": "u"})]
    frames += [encode_frame("rep", {"seq": k, "ms": 1000 * k, "cell_mv": [3300, 3310], "stack_mv": 6610,
                                    "i_ma": -1000, "t_dc": [250], "soc_pm": 500, "sig_pm": 20, "alarm": 0,
                                    "fault": 0}) for k in range(5)]
    path.write_bytes(b"".join(b"%d.000 " % (100 + k) + f for k, f in enumerate(frames)))
    return path


# -- no command destroys an input

def _aliases(tmp_path, target):
    """Output names that are the target file: itself, ./itself, a symlink to it, a hard link to it."""
    os.symlink(target, tmp_path / "sym")
    os.link(target, tmp_path / "hard")
    return [target, Path(os.path.relpath(target)), tmp_path / "sym", tmp_path / "hard"]


def test_replay_refuses_to_write_over_its_capture(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cap = capture(tmp_path / "cap.raw")
    before = cap.read_bytes()
    for out in _aliases(tmp_path, cap):
        rc, err = run(["replay", cap, "-o", out], capsys)
        assert rc != 0 and "is the input" in one_line(err)
        assert cap.read_bytes() == before  # the old replay unlinked it before reading


@pytest.mark.parametrize("cmd", [["estimate", "--model", "lfp"], ["fit"], ["plot"]])
def test_estimate_fit_plot_refuse_to_write_over_their_log(tmp_path, capsys, monkeypatch, cmd):
    monkeypatch.chdir(tmp_path)
    log = small_log(tmp_path / "log.csv")
    before = log.read_bytes()
    for out in _aliases(tmp_path, log):
        rc, err = run([cmd[0], log, *cmd[1:], "-o", out], capsys)
        assert rc != 0 and "is the input" in one_line(err)
        assert log.read_bytes() == before


def test_estimate_refuses_to_write_over_its_model(tmp_path, capsys):
    model = tmp_path / "m.json"
    model.write_text((ROOT / "firmware/pwfw/models/lfp.json").read_text())
    before = model.read_bytes()
    rc, err = run(["estimate", small_log(tmp_path / "log.csv"), "--model", model, "-o", model], capsys)
    assert rc != 0 and "is the input" in one_line(err) and model.read_bytes() == before


def test_failed_replay_keeps_the_previous_output(tmp_path, capsys):
    out = small_log(tmp_path / "out.csv")
    before = out.read_bytes()
    rc, err = run(["replay", capture(tmp_path / "c.raw", fmt=3), "-o", out], capsys)
    assert rc != 0 and "format 3" in one_line(err)
    assert out.read_bytes() == before  # the old replay deleted it first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.raw", "out.csv"]  # no temporary left


def test_atomic_output_replaces_only_when_complete(tmp_path):
    out = tmp_path / "f.png"
    out.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_output(out) as tmp:
            Path(tmp).write_bytes(b"half")
            raise RuntimeError("killed mid-write")
    assert out.read_bytes() == b"old" and os.listdir(tmp_path) == ["f.png"]
    with atomic_output(out) as tmp:
        assert Path(tmp).suffix == ".png" and Path(tmp).parent == tmp_path  # same folder: rename is atomic
        Path(tmp).write_bytes(b"new")
    assert out.read_bytes() == b"new" and os.listdir(tmp_path) == ["f.png"]


def test_logger_never_writes_through_an_existing_name(tmp_path):
    lg = Logger("/dev/null", tmp_path)
    t = 1_700_000_000.0
    base = lg.files.new_base(t)
    lg.files.base = None
    victim = tmp_path / "victim"
    os.symlink(victim, base + ".raw")  # dangling: os.path.exists() says False, open(O_CREAT) follows it
    lg._start_files(t)
    raw = lg.session.raw.path
    lg.session.close()
    assert not victim.exists() and raw != base + ".raw" and os.path.islink(base + ".raw")


def test_logger_rotation_keeps_existing_captures(tmp_path):
    lg = Logger("/dev/null", tmp_path)
    t = 1_700_000_000.0
    base = lg.files.new_base(t)
    lg.files.base = None
    Path(base + ".raw").write_bytes(b"1.000 earlier capture\n")
    lg._start_files(t)
    lg._start_files(t)  # a rotation within the same second
    lg.session.close()
    assert Path(base + ".raw").read_bytes() == b"1.000 earlier capture\n"
    assert len(set(lg.files.created)) == 2 and base + ".raw" not in lg.files.created


# -- wrong files: one line, no traceback

def test_log_out_that_is_a_file_is_refused(tmp_path, capsys):
    f = small_log(tmp_path / "log.csv")
    before = f.read_bytes()
    rc, err = run(["log", "--port", tmp_path / "nope", "--out", f, "--duration", "1"], capsys)
    assert rc != 0 and "not a folder" in one_line(err) and f.read_bytes() == before


def _bad_files(tmp_path):
    """name -> what the one line must say (names chosen not to contain those words)"""
    (tmp_path / "zero.csv").write_bytes(b"")
    (tmp_path / "bytes.csv").write_bytes(bytes(range(256)) * 8)
    (tmp_path / "other.csv").write_text("time,volts\n1,3.3\n")
    (tmp_path / "header.csv").write_text("t_s,current_a,cell01_v\n")
    return {"zero.csv": "empty", "bytes.csv": "binary", "other.csv": "missing column",
            "header.csv": None, "absent.csv": "No such file"}


@pytest.mark.parametrize("cmd", [["estimate", "--model", "lfp"], ["fit"], ["plot"]])
def test_bad_logs_give_one_line(tmp_path, capsys, cmd):
    for name, why in _bad_files(tmp_path).items():
        out = tmp_path / ("out" + (".png" if cmd[0] == "plot" else ".csv"))
        rc, err = run([cmd[0], tmp_path / name, *cmd[1:], "-o", out], capsys)
        line = one_line(err)
        assert rc != 0 and name in line and (why is None or why in line), (name, line)
        assert not out.exists()  # the old estimate wrote an empty result for a log without rows


def test_replay_of_a_file_that_is_no_capture(tmp_path, capsys):
    (tmp_path / "binary.raw").write_bytes(bytes(range(256)) * 8)
    rc, err = run(["replay", tmp_path / "binary.raw", "-o", tmp_path / "o.csv"], capsys)
    assert rc != 0 and "packwatch log" in one_line(err) and not (tmp_path / "o.csv").exists()


def test_a_corrupt_field_does_not_stop_reading(tmp_path, capsys):
    p = tmp_path / "torn.csv"
    p.write_text("t_s,current_a,cell01_v\n0,-1,3.3\n1,x,3.3\n2,-1,3.3\n")  # a torn write by a foreign tool
    rc, err = run(["plot", p, "-o", tmp_path / "t.png"], capsys)
    assert rc == 0 and (tmp_path / "t.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", err


def _model(tmp_path, **change):
    m = json.loads((ROOT / "firmware/pwfw/models/lfp.json").read_text())
    for k, v in change.items():
        if v is None:
            del m[k]
        else:
            m[k] = v
    p = tmp_path / "m.json"
    p.write_text(json.dumps(m))
    return p


@pytest.mark.parametrize("change, says", [
    ({"soc_pct": None}, "missing key 'soc_pct'"),
    ({"rc": [{"tau_s": 30}]}, "missing key 'r_ohm'"),
    ({"capacity_ah": [3]}, "not a cell model"),
    ({"capacity_ah": "three"}, "not a cell model"),
])
def test_bad_model_names_what_is_wrong(tmp_path, capsys, change, says):
    rc, err = run(["estimate", small_log(tmp_path / "l.csv"), "--model", _model(tmp_path, **change),
                   "-o", tmp_path / "o.csv"], capsys)
    line = one_line(err)
    assert rc != 0 and says in line and "m.json" in line and "cell-model.md" in line


def test_model_that_is_not_json(tmp_path, capsys):
    (tmp_path / "m.json").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    rc, err = run(["estimate", small_log(tmp_path / "l.csv"), "--model", tmp_path / "m.json",
                   "-o", tmp_path / "o.csv"], capsys)
    assert rc != 0 and "not a cell model" in one_line(err)


def test_unknown_scenario_lists_the_valid_ones(capsys):
    from hil.scenarios import SCENARIOS
    for cmd in ("sim", "demo"):
        rc, err = run([cmd, "--scenario", "nope"], capsys)
        line = one_line(err)
        assert rc == 2 and "nope" in line and all(name in line for name in SCENARIOS)


def test_sim_help_lists_the_scenarios(capsys):
    from hil.scenarios import SCENARIOS
    with pytest.raises(SystemExit):
        cli.main(["sim", "--help"])
    out = capsys.readouterr().out
    for s in SCENARIOS.values():
        assert re.search(r"^\s+%s\s.*%s" % (s.name, re.escape(s.about[:30])), out, re.M), s.name


# -- numbers are checked when parsed

BAD_NUMBERS = [
    ["demo", "--hours", "-1"], ["demo", "--hours", "0"], ["demo", "--seed", "-1"],
    ["log", "--duration", "-1"], ["log", "--duration", "0"], ["log", "--rotate-mb", "0"],
    ["log", "--baud", "0"], ["log", "--baud", "fast"],
    ["sim", "--speed", "-1"], ["sim", "--speed", "nan"], ["sim", "--duration", "-1"], ["sim", "--seed", "-5"],
    ["live", "--duration", "-1"], ["live", "--timeout", "0"],
    ["estimate", "l.csv", "--model", "lfp", "-o", "o.csv", "--initial-soc", "150"],
    ["estimate", "l.csv", "--model", "lfp", "-o", "o.csv", "--initial-soc", "-1"],
    ["estimate", "l.csv", "--model", "lfp", "-o", "o.csv", "--capacity-ah", "-5"],
    ["estimate", "l.csv", "--model", "lfp", "-o", "o.csv", "--capacity-ah", "inf"],
    ["plot", "l.csv", "-o", "p.png", "--workers", "0"],
    ["cmd", "ping", "--baud", "-9600"], ["cmd", "ping", "--timeout", "0"],
    ["cmd", "restart", "--restart-timeout", "-1"],
]


@pytest.mark.parametrize("argv", BAD_NUMBERS, ids=lambda a: " ".join(a[:1] + a[-2:]))
def test_out_of_range_numbers_are_refused_when_parsed(argv, capsys):
    with pytest.raises(SystemExit) as e:
        cli.build_parser().parse_args(argv)  # the old parser took them, and the command ran
    err = capsys.readouterr().err
    assert e.value.code == 2 and "argument %s:" % argv[-2] in err and argv[-1] in err


@pytest.mark.parametrize("argv", [["sim", "--speed", "0"], ["estimate", "l.csv", "--model", "lfp", "-o", "o.csv",
                                                            "--initial-soc", "0"],
                                  ["estimate", "l.csv", "--model", "lfp", "-o", "o.csv", "--initial-soc", "100"]])
def test_documented_edge_values_are_accepted(argv):
    cli.build_parser().parse_args(argv)  # `--speed 0` is "as fast as possible" (docs/host.md)


def test_every_option_has_help():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = [(name, a.option_strings[0]) for name, p in sub.choices.items() for a in p._actions
               if a.option_strings and not a.help]
    assert not missing


# -- ports and messages

def test_log_on_a_missing_port_says_so_and_keeps_retrying(tmp_path):
    status, notes = io.StringIO(), io.StringIO()
    port = str(tmp_path / "ttyNOPE")
    lg = Logger(port, tmp_path / "out", duration=1.5, status_stream=status, notice_stream=notes)
    assert lg.run() == 1
    assert "waiting for board on %s (retry 1)" % port in status.getvalue()
    assert "(retry 2)" in status.getvalue()  # back-off 0.1, 0.2, 0.4 s: it keeps trying
    hint = [ln for ln in notes.getvalue().splitlines() if ln]
    assert len(hint) == 1 and "does not exist" in hint[0] and "packwatch ports" in hint[0]


def test_log_on_a_silent_port_fails_with_a_hint(tmp_path, capsys):
    master, slave = os.openpty()  # a port that is there but sends nothing (firmware stopped at the REPL)
    try:
        port = os.ttyname(slave)
        lg = Logger(port, tmp_path, duration=1.0)
        rc = lg.run()
    finally:
        os.close(master)
        os.close(slave)
    line = one_line(capsys.readouterr().err)
    assert rc != 0 and lg.connects == 1 and "no telemetry" in line
    assert "packwatch cmd --port %s restart" % port in line and "--baud" in line


def test_ports_all_labels_a_uart_as_serial_not_virtual(tmp_path, monkeypatch, capsys):
    from serial.tools import list_ports_common
    monkeypatch.setenv("PACKWATCH_RUNTIME_DIR", str(tmp_path))  # no virtual board registered
    uart = list_ports_common.ListPortInfo("/dev/ttyS0", skip_link_detection=True)  # pyserial's view of a UART
    monkeypatch.setattr("serial.tools.list_ports.comports", lambda *a, **k: [uart])
    assert ports.main(argparse.Namespace(all=True, json=False)) == 0
    row = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("/dev/ttyS0")]
    assert len(row) == 1 and "virtual" not in row[0] and row[0].split()[1] == "serial"


def test_deploy_to_a_missing_port_says_it_does_not_exist(tmp_path):
    from packwatch.deploy import mpremote
    with pytest.raises(OSError) as e:
        mpremote(str(tmp_path / "ttyNOPE"), ("exec", "pass"), timeout=60)
    msg = str(e.value)
    assert "does not exist" in msg and "packwatch ports" in msg and "another program" not in msg


# -- live: the word for the sign of the current

@pytest.mark.parametrize("i_ma, word", [(2500, "charging"), (-2500, "discharging"), (0, "rest")])
def test_live_names_the_direction_of_the_current(i_ma, word):
    # docs/protocol.md: "Current is positive when the pack is charging"
    s = render({"seq": 1, "ms": 5, "cell_mv": [3300, 3301], "stack_mv": 6601, "i_ma": i_ma, "t_dc": [250]},
               {"chem": "lfp"})
    pack = next(ln for ln in s.splitlines() if ln.startswith("pack "))
    assert re.search(r"\((\w+)\)$", pack).group(1) == word


def test_replay_does_not_import_the_logger():
    # Session lives in packwatch.session: re-decoding a capture needs none of the serial-port code
    code = "import sys, packwatch.replay; print('packwatch.logger' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
