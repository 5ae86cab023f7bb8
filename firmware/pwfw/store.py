# Persistent state in two slot files, written alternately: a power loss while writing one slot
# leaves the other (the newest complete record) intact. Format and wear figures: docs/persistence.md.
from pwfw.compat import call, const, ticks_diff

MAGIC = b"PWST"
VERSION = const(1)
SEQ_MASK = const(0x3FFFFFFF)  # sequence numbers wrap at 2**30: small ints on every port
MAX_LEN = const(2048)  # payload bytes; bounds what load() reads from a garbage file


def pack(d, seq):
    """One slot image: header + compact JSON of d. The CRC covers header (but the CRC) and payload.
    (pwfw.store_io: the record code is loaded for a load or save and dropped after it.)"""
    return call("store_io", "pack", d, seq)


def unpack(buf):
    """(seq, dict) from a slot image, or None if it is not one complete valid record."""
    return call("store_io", "unpack", buf)


def newer(a, b):
    """True if sequence number a is after b (serial-number arithmetic modulo 2**30)."""
    return 0 < ((a - b) & SEQ_MASK) < (SEQ_MASK + 1) >> 1


class Store:
    def __init__(self, path_a="state_a.bin", path_b="state_b.bin", period_ms=900000, soc_step_pm=50,
                 gap_ms=300000):
        self.paths = (path_a, path_b)
        self.period_ms = period_ms  # save at least this often while running...
        self.soc_step_pm = soc_step_pm  # ...or sooner after this SoC change...
        self.gap_ms = gap_ms  # ...but never sooner than this after the last save
        self.corrupt = False  # a slot file existed but held no valid record (fault bit `store`)
        self.writes = 0
        self.errors = 0  # failed writes (OSError from the filesystem)
        self.seq = -1  # sequence of the newest valid record, -1 if none
        self._slot = -1  # which slot holds it
        self._loaded = False
        self._last_ms = None
        self._last_soc = None

    def load(self):
        """Newest valid record as a dict, or None (first boot, or both slots bad: see corrupt)."""
        return call("store_io", "load", self)

    def save(self, d, now_ms=None, soc_pm=None):
        """Write d to the slot not holding the newest record. Returns True, or False if the filesystem
        failed (counted in errors; the newest record stays the previous one). MemoryError if the
        record code does not fit now (the caller flags it)."""
        return call("store_io", "save", self, d, now_ms, soc_pm)

    def due(self, now_ms, soc_pm=None):
        """True when the running state should be saved now (the rate limit in docs/persistence.md)."""
        if self._last_ms is None:  # the period starts at boot
            self._last_ms = now_ms
            self._last_soc = soc_pm
            return False
        age = ticks_diff(now_ms, self._last_ms)
        if age >= self.period_ms:
            return True
        if age < self.gap_ms or soc_pm is None or self._last_soc is None:
            return False
        step = soc_pm - self._last_soc
        return step >= self.soc_step_pm or -step >= self.soc_step_pm
