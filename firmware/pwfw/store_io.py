# The record code of pwfw.store (docs/persistence.md): a slot image's header, CRC and JSON payload,
# reading both slots and writing one. Saves are periodic (every few minutes), so pwfw.store loads
# this module for each load or save and drops it after: the loop does not hold it
# (docs/architecture.md, Memory).
import binascii
import gc
import json
import os
import struct

from pwfw.compat import MICROPYTHON, const
from pwfw.store import MAGIC, MAX_LEN, SEQ_MASK, VERSION, newer

_HDR = "<4sBBHII"  # magic, version, flags, payload length, sequence, CRC-32
_HDR_LEN = const(16)


def pack(d, seq):
    """One slot image: header + compact JSON of d. The CRC covers header (but the CRC) and payload."""
    payload = json.dumps(d).encode()
    if len(payload) > MAX_LEN:
        raise ValueError("state too large: %d > %d bytes" % (len(payload), MAX_LEN))
    head = struct.pack(_HDR, MAGIC, VERSION, 0, len(payload), seq & SEQ_MASK, 0)[:12]
    crc = binascii.crc32(payload, binascii.crc32(head)) & 0xFFFFFFFF
    return head + struct.pack("<I", crc) + payload


def unpack(buf):
    """(seq, dict) from a slot image, or None if it is not one complete valid record."""
    if len(buf) < _HDR_LEN:
        return None
    return _record(buf[:_HDR_LEN], buf[_HDR_LEN:])


def _record(head, payload):
    magic, ver, _flags, n, seq, crc = struct.unpack(_HDR, head)
    if magic != MAGIC or ver != VERSION or len(payload) != n or seq > SEQ_MASK:
        return None
    if binascii.crc32(payload, binascii.crc32(head[:12])) & 0xFFFFFFFF != crc:
        return None
    try:
        d = json.loads(payload.decode())
    except (ValueError, UnicodeError):
        return None
    return (seq, d) if isinstance(d, dict) else None


def _read_record(f):
    # the header first, then just the payload it announces (+1 byte to see a longer file): start-up
    # reads this at its heap high-water mark, where a 2 KB buffer for the largest record may not fit
    head = f.read(_HDR_LEN)
    if len(head) < _HDR_LEN:
        return False
    n = struct.unpack(_HDR, head)[3]
    if n > MAX_LEN:
        return False
    return _record(head, f.read(n + 1)) or False


def _read(path):
    # None if missing; False if present but not a valid record; else (seq, dict).
    try:
        f = open(path, "rb")
    except OSError:
        return None
    try:
        with f:
            try:
                return _read_record(f)
            except MemoryError:
                # a full heap is not a bad record: calling it corrupt would let the next save
                # overwrite the newest good slot. Collect and try once more, else let it raise.
                gc.collect()
                f.seek(0)
                return _read_record(f)
    except OSError:
        return False


def load(self):
    """Newest valid record as a dict, or None (first boot, or both slots bad: see corrupt)."""
    self.corrupt = False
    self.seq = -1
    self._slot = -1
    best = None
    for slot in (0, 1):
        r = _read(self.paths[slot])
        if r is False:
            self.corrupt = True
        elif r is not None and (best is None or newer(r[0], best[0])):
            best = r
            self.seq = r[0]
            self._slot = slot
    self._loaded = True  # only once both slots were read: a save after a MemoryError here reads them first
    return None if best is None else best[1]


def save(self, d, now_ms, soc_pm):
    """Write d to the slot not holding the newest record. Returns True, or False if the filesystem
    failed (counted in errors; the newest record stays the previous one)."""
    if not self._loaded:
        load(self)
    buf = pack(d, self.seq + 1)
    slot = 1 - self._slot if self._slot >= 0 else 0
    try:
        with open(self.paths[slot], "wb") as f:
            f.write(buf)
            f.flush()
            if not MICROPYTHON:
                os.fsync(f.fileno())
        if MICROPYTHON and hasattr(os, "sync"):  # flush the filesystem's block caches
            os.sync()
    except OSError:
        self.errors += 1
        return False
    self.seq = (self.seq + 1) & SEQ_MASK
    self._slot = slot
    self.writes += 1
    if now_ms is not None:
        self._last_ms = now_ms
        self._last_soc = soc_pm
    return True
