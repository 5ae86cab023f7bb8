"""`packwatch ports`: candidate boards on USB serial ports and running virtual boards.

Virtual boards register one JSON file each in ``runtime_dir()/vboards/<serial>.json``
({"port", "serial", "description", "pid"}); entries whose process is gone are skipped.
``runtime_dir()`` is ``$PACKWATCH_RUNTIME_DIR`` or ``/tmp/packwatch-<uid>``.
"""
import json
import os
import sys

# USB VID:PIDs of boards the firmware runs on (RP2040 MicroPython, Espressif native USB, common
# USB-UART bridges on ESP32 dev boards)
KNOWN_USB = {0x2E8A: "Raspberry Pi RP2", 0x303A: "Espressif", 0x10C4: "Silicon Labs CP210x",
             0x1A86: "WCH CH34x", 0x0403: "FTDI"}
VBOARD_DESC = "packwatch virtual board"


def runtime_dir():
    d = os.environ.get("PACKWATCH_RUNTIME_DIR")
    return d if d else "/tmp/packwatch-%d" % os.getuid()


def _vboard_dir():
    return os.path.join(runtime_dir(), "vboards")


def _safe(serial):
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(serial)) or "_"


def register_vboard(port, serial, desc=VBOARD_DESC, pid=None):
    """Announce a virtual board (called by packwatch/vboard/relay.py). Returns the registry file path."""
    d = _vboard_dir()
    os.makedirs(d, mode=0o700, exist_ok=True)
    path = os.path.join(d, _safe(serial) + ".json")
    tmp = path + ".%d.tmp" % os.getpid()
    with open(tmp, "w") as f:
        json.dump({"port": port, "serial": str(serial), "description": desc,
                   "pid": os.getpid() if pid is None else pid}, f)
    os.replace(tmp, path)  # readers never see half a file
    return path


def unregister_vboard(serial):
    try:
        os.unlink(os.path.join(_vboard_dir(), _safe(serial) + ".json"))
    except FileNotFoundError:
        pass


def _alive(pid):
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (TypeError, ValueError, OverflowError):
        return False
    return True


def virtual_ports():
    out = []
    try:
        names = sorted(os.listdir(_vboard_dir()))
    except OSError:
        return out
    for name in names:
        if not name.endswith(".json"):
            continue
        try:
            with open(os.path.join(_vboard_dir(), name)) as f:
                e = json.load(f)
            port, serial, pid = e["port"], str(e["serial"]), e.get("pid")
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a torn or foreign file: not a board
        if pid is not None and not _alive(pid):
            continue
        out.append({"port": port, "vid": None, "pid": None, "serial": serial,
                    "description": e.get("description", VBOARD_DESC), "kind": "virtual"})
    return out


def usb_ports(all_ports=False):
    try:
        from serial.tools import list_ports as lp
    except ImportError:  # pragma: no cover
        return []
    out = []
    for p in sorted(lp.comports(), key=lambda p: p.device):
        if p.vid is None and not all_ports:
            continue
        if not all_ports and p.vid not in KNOWN_USB:
            continue
        out.append({"port": p.device, "vid": p.vid, "pid": p.pid, "serial": p.serial_number,
                    "description": p.description or KNOWN_USB.get(p.vid, ""),
                    "kind": "usb" if p.vid is not None else "serial"})  # no VID: a UART (ttyS0), not USB
    return out


def list_ports(all_ports=False):
    """Candidate boards: dicts with port, vid, pid, serial, description, kind ('usb'|'virtual', and
    with all_ports 'serial' for a port without a USB id, e.g. /dev/ttyS0)."""
    return usb_ports(all_ports) + virtual_ports()


def find_port(serial=None):
    """The port of the board with this serial number (case-insensitive), or of the only/first
    candidate when serial is None; None when there is none."""
    ports = list_ports()
    if serial is None:
        return ports[0]["port"] if ports else None
    s = str(serial).lower()
    for p in ports:
        if p["serial"] and str(p["serial"]).lower() == s:
            return p["port"]
    return None


def resolve_port(port, serial=None):
    """What a tool opens for ``--port``/``--serial``: the port or URL as given, or for 'auto' (or
    None) the board with that serial number / the first candidate; None when there is none."""
    if port in (None, "auto"):
        return find_port(serial)
    return port


def open_serial(url, baud=115200, timeout=0.1):
    """Open a port path or any pyserial URL (``socket://``, ``rfc2217://``, ``loop://``)."""
    import serial
    return serial.serial_for_url(url, baudrate=baud, timeout=timeout)


def format_table(ports):
    rows = [("PORT", "VID:PID", "SERIAL", "DESCRIPTION")]
    for p in ports:
        # only the registered virtual boards are "virtual"; a port without a USB id is a plain serial port
        vidpid = ("%04X:%04X" % (p["vid"], p["pid"] or 0) if p["vid"] is not None
                  else "virtual" if p.get("kind") == "virtual" else "serial")
        rows.append((p["port"], vidpid, p["serial"] or "-", p["description"] or ""))
    w = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join("%-*s  %-*s  %-*s  %s" % (w[0], r[0], w[1], r[1], w[2], r[2], r[3]) for r in rows)


def main(args):
    ports = list_ports(getattr(args, "all", False))
    if getattr(args, "json", False):
        print(json.dumps(ports))
    elif not ports:
        print("no boards found (plug one in, or start a virtual board)", file=sys.stderr)
        return 1
    else:
        print(format_table(ports))
    return 0


def register(sub):
    p = sub.add_parser("ports", help="list connected boards (USB and virtual)")
    p.add_argument("--all", action="store_true",
                   help="also list every other serial port (unknown USB devices, built-in UARTs such as /dev/ttyS0)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=main)
    return p
