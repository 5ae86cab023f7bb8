"""`packwatch deploy`: compile the firmware for a board, copy it with mpremote, verify every hash.

mpremote runs in `resume` mode (no soft reset before copying), which also works against the virtual
board's pseudo-terminal. Stale files that would shadow the new ones (a `.py` beside a `.mpy`) are removed.
"""
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .boardfile import load_board
from .staging import find_board_file, stage

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
