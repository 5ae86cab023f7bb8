"""The board process of a virtual board: what runs the firmware, on the flash folder.

By default the MicroPython unix port: `micropython -X heapsize=<heap + SIM_HEAP_K> -i main.py` in
`fs_dir`, with hal_sim (hil/vboard) and the simulated chips (hil/chips) on its path. Another board
process (packwatch.vboard.rp2040: an emulated RP2040) replaces `_launch` and `_kill` and keeps the
rest: its serial port is pty A's slave (`self._a_slave`, see relay.py), its end of the plant pipe
the two descriptors `_launch` gets (see lockstep.py), and `_launch` returns an object with
`poll()`, `kill()` and `wait()` (a subprocess.Popen).

Soft reset as on a board: Ctrl-D at the REPL ends the unix port's process (it has no soft reset);
the board prints SOFT_REBOOT and starts it again with reset cause `soft`, in the REPL mode it was in
(followed from the banners MicroPython prints), as rp2's main.c does.
"""
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import hil

from ..staging import find_board_file, micropython_exe, mpy_cross_exe, stage

HIL_DIR = Path(hil.__file__).resolve().parent
REPO = HIL_DIR.parent
# The simulated chips (hil/chips) and hal_sim live in the firmware's MicroPython process: about
# 52 KB of its heap (`mem` command's `sim`: 52 000 B; 55.8 KB with T1's fake HAL rig), and their
# names share the interpreter's qstr table with the firmware's: the table grows in pools that double,
# so the sim's ~300 names (with the REPL's and pwfw.boot's) take it into its 7th pool (~14.5 KB at
# once), which `mem` counts as the firmware's (the board's `alloc` reads ~98 KB where T1's rig,
# without them, reads ~72 KB: docs/architecture.md, Memory). The process gets this much on top of the
# firmware's 96 KB; the firmware's own budget is held by T1 (tests/t1/test_app_mp.py, 80 KB guard)
# and on the board's architecture by T3 (the emulated RP2040).
SIM_HEAP_K = 96
# Of what `mem` counts as the firmware's on the virtual board, the qstr pool the sim's names add (the
# sim's ~370 names take the shared table past 1260 names, into its 7th pool, ~14.5 KB; measured with
# micropython.qstr_info() inside the board process: 1333 names, 40 173 B, in 7 pools).
SIM_QSTR_K = 16
# What MicroPython's REPL prints on entering each mode (shared/runtime/pyexec.c): the board follows
# them to know which mode a soft reset happens in, as a board's firmware knows pyexec_mode_kind.
RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n"
FRIENDLY_BANNER = b'Type "help()" for more information.\r\n'
SOFT_REBOOT = b"MPY: soft reboot\r\n"  # what a board's main.c prints on every soft reset


def heap_k(heap):
    """'96K' / '1M' / 98304 -> kilobytes."""
    s = str(heap).strip().upper()
    if s.endswith("K"):
        return int(s[:-1])
    if s.endswith("M"):
        return int(s[:-1]) * 1024
    return int(s) // 1024


def board_file_for(chemistry, base=None):
    """The sim board description, adjusted to the scenario's chemistry."""
    from ..boardfile import check_board, load_board

    base = Path(find_board_file("sim") if base is None else base)
    board = load_board(base)  # BoardFileError names the key
    if chemistry and chemistry != board.get("chemistry"):
        board["chemistry"] = chemistry
        board["cells"] = 14 if chemistry == "nmc" else 16
        check_board(board, "%s with chemistry %s" % (base, chemistry))  # its limits may not fit the other one
    return board


# What the board process imports from hil/: compiled by mpy-cross like the firmware, so that
# compiling their sources (and the names a compile interns) does not take the board's heap.
# (hal_fake: T1's rig, tests/t1/test_app_mp.py, runs the firmware on the chips with it)
SIM_SOURCES = ("__init__.py", "faults.py", "mpcompat.py", "hal_fake.py", "chips/*.py", "vboard/hal_sim.py")


def sim_modules(arch):
    """A folder with hil's board-side modules as .mpy for `arch` (hal_sim.py at its top, as the board
    imports it), built once per content of those sources and mpy-cross, shared by every board."""
    import hashlib

    srcs = sorted(f for pat in SIM_SOURCES for f in HIL_DIR.glob(pat))
    exe = mpy_cross_exe()
    st = os.stat(exe)
    h = hashlib.sha256(("%s %s %d %d" % (arch, exe, st.st_size, st.st_mtime_ns)).encode())
    for f in srcs:
        h.update(f.relative_to(HIL_DIR).as_posix().encode() + b"\0" + f.read_bytes())
    out = Path(tempfile.gettempdir()) / ("packwatch-sim-%s" % h.hexdigest()[:16])
    if (out / "hal_sim.mpy").exists():
        return out
    tmp = Path(tempfile.mkdtemp(prefix=out.name + ".", dir=out.parent))
    for f in srcs:
        rel = f.relative_to(HIL_DIR)
        if rel.parts[0] == "vboard":
            dst, name = tmp / (f.stem + ".mpy"), f.stem
        else:
            dst, name = tmp / "hil" / rel.with_suffix(".mpy"), ".".join(("hil",) + rel.with_suffix("").parts)
        dst.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([exe, "-march=" + arch, "-s", name, "-o", str(dst), str(f)], check=True, capture_output=True)
    try:
        os.rename(tmp, out)  # atomic: a board started meanwhile by another test finds all or nothing
    except OSError:  # another process built it first
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _unix_arch(board):
    """The native arch of the unix port the board process runs (a board file for a real board names
    its own, armv6m or xtensawin, which this interpreter cannot load)."""
    arch = board.get("arch")
    return arch if arch in ("x64", "x86") else "x64"


def install_firmware(fs_dir, board, source=False):
    """Flash a fresh board with what `packwatch deploy` would copy: the firmware compiled by mpy-cross
    for the unix port's architecture, main.py and the board file. (Compiling .py sources on the
    device needs more heap than a 96 KB board has; real boards get .mpy files too.)"""
    stage(board, fs_dir, source=source)


class BoardProcess:
    """The board process and its flash folder (a part of VirtualBoard: it shares the instance)."""

    def _init_process(self, fs_dir, board_file, heap, install):
        self.heap = heap
        self._own_fs = fs_dir is None
        self.fs_dir = Path(fs_dir or tempfile.mkdtemp(prefix="packwatch-vboard-"))
        self.fs_dir.mkdir(parents=True, exist_ok=True)  # an empty board: flash it with `packwatch deploy`
        self.board = board_file_for(self.chemistry, board_file)
        if install and not (self.fs_dir / "main.py").exists():
            install_firmware(self.fs_dir, self.board)
        self.boots = 0
        self.resets = []  # causes of every start, in order
        self._proc = None
        self._cause_next = "power"
        self._raw_repl = False  # the REPL mode last entered (see _track_mode)
        self._mode_tail = b""
        self._swallow = None  # output dropped until the raw REPL banner (see _spawn)
        self.soft_reboots = 0

    def _spawn(self, raw_repl=False):
        """Start MicroPython on the flash folder: main.py, or (raw_repl: a soft reset in the raw REPL,
        where a board skips main.py) straight into the raw REPL."""
        self._unspec()
        req_r, req_w = os.pipe()  # firmware -> runner
        rep_r, rep_w = os.pipe()  # runner -> firmware
        env = dict(os.environ)
        env.update(
            MICROPYPATH=os.pathsep.join(["", ".frozen", "lib", str(sim_modules(_unix_arch(self.board)))]),
            PW_PLANT_FDS="%d,%d" % (rep_r, req_w),
            PW_SEED=str(self.seed),
            PW_RESET=self._cause_next,
            PW_UID=self.serial,
        )
        self._proc = self._launch(env, rep_r, req_w, raw_repl)
        os.close(rep_r)
        os.close(req_w)
        self._raw_repl = raw_repl
        self._mode_tail = b""
        self._swallow = None
        if raw_repl:
            # the unix port starts at the friendly REPL: at its first prompt, Ctrl-A takes it to the
            # raw REPL (see _from_fw); its banner and prompt on the way are dropped, so the host sees
            # what a board prints
            self._swallow = bytearray()
        self._new_boot(req_r, rep_w)
        self.resets.append(self._cause_next)
        self._cause_next = "power"
        self.boots += 1
        self._house = 0.0

    def _launch(self, env, rep_r, req_w, raw_repl=False):
        """Start the board process: its serial port on pty A, its end of the plant pipe on rep_r/req_w
        (packwatch.vboard.rp2040 starts an emulated RP2040 here instead)."""
        argv = [micropython_exe(), "-X", "heapsize=%dK" % (heap_k(self.heap) + SIM_HEAP_K)]
        return subprocess.Popen(
            argv if raw_repl else argv + ["-i", "main.py"],
            stdin=self._a_slave, stdout=self._a_slave, stderr=self._a_slave,
            cwd=str(self.fs_dir), env=env, pass_fds=(rep_r, req_w), start_new_session=True,
        )

    def _kill(self):
        p = self._proc
        if p and p.poll() is None:
            p.kill()
            p.wait()
        for fd in ("_req_r", "_rep_w"):
            v = getattr(self, fd, None)
            if v is not None:
                try:
                    os.close(v)
                except OSError:
                    pass
                setattr(self, fd, None)

    def restart(self, cause="power"):
        """Cut power at this instant and start again (what a brown-out or a pulled fuse does)."""
        with self._lock:
            self._kill()
            self._cause_next = cause
            self._spawn()

    def _check_process(self):
        """Start the board again if its process ended (housekeeping, every few ms)."""
        rc = self._proc.poll()
        if rc is not None and self._running:
            # The firmware process ended. rc 0: Ctrl-D at the REPL (or sys.exit), where the unix port
            # exits and a board soft-resets: say so as a board does, and start again in the REPL mode
            # it was in (main.py runs only from the friendly REPL). Otherwise a crash: restart.
            self._from_fw(self._drain_a())  # what it printed last ("OK" in the raw REPL) comes first
            raw = rc == 0 and self._raw_repl
            if rc == 0:
                self.soft_reboots += 1
                self._to_host(SOFT_REBOOT)
            self._kill()
            self._cause_next = "soft"
            self._spawn(raw_repl=raw)

    def _remove_flash(self):
        if self._own_fs:
            shutil.rmtree(self.fs_dir, ignore_errors=True)

    def _track_mode(self, data):
        """Follow the REPL mode from the banners MicroPython prints on entering it."""
        s = self._mode_tail + data
        self._mode_tail = s[-40:]
        r, f = s.rfind(RAW_BANNER), s.rfind(FRIENDLY_BANNER)
        if r > f:
            self._raw_repl = True
        elif f > r:
            self._raw_repl = False

    def _from_fw(self, data):
        """The firmware's output, towards the host."""
        if not data:
            return
        if self._swallow is not None:
            sw = self._swallow
            if not sw.endswith(b">>> ") and (sw + data).endswith(b">>> "):
                # at the prompt, not earlier: entering its raw terminal mode the unix port may flush input
                # typed before (tcsetattr TCSAFLUSH)
                os.write(self._a_master, b"\x01")
            sw += data
            k = sw.find(RAW_BANNER)
            if k < 0 and len(sw) < 65536:
                return
            data = bytes(self._swallow[max(k, 0):])
            self._swallow = None
        self._track_mode(data)
        self._to_host(data)
