"""firmware/package.json (for `mpremote mip install`) must list exactly the firmware package's files."""
import json
from pathlib import Path

import pwfw

FW = Path(__file__).resolve().parents[2] / "firmware"


def test_package_json_lists_every_firmware_file():
    pkg = json.loads((FW / "package.json").read_text())
    listed = sorted(dst for dst, src in pkg["urls"])
    have = sorted(p.relative_to(FW).as_posix() for p in (FW / "pwfw").rglob("*")
                  if p.is_file() and p.suffix in (".py", ".json") and "__pycache__" not in p.parts)
    assert listed == have
    assert all((FW / src).is_file() for dst, src in pkg["urls"])
    assert pkg["version"] == pwfw.VERSION
