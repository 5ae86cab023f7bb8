# Wire protocol, device side (docs/protocol.md): frames are built in one pre-allocated buffer
# so a report costs no heap beyond the CRC, and command lines are assembled byte by byte.
from array import array

from pwfw.compat import MICROPYTHON, const, micropython

if not MICROPYTHON:
    from pwfw.compat import ptr8, ptr32

_MAX_FRAME = const(1024)
_MAX_CMD = const(96)
_HEX = b"0123456789ABCDEF"


@micropython.viper
def _digits(buf, n: int, v: int) -> int:
    """Write v (|v| < 2**30) in decimal at buf[n]; return the index after it. Viper: machine-word
    arithmetic, ~10x faster than the same loop on Python ints, and nothing allocated."""
    b = ptr8(buf)
    if v < 0:
        b[n] = 45  # '-'
        n += 1
        v = -v
    d = 1
    x = v
    while x >= 10:
        x //= 10
        d += 1
    i = n + d
    while True:
        i -= 1
        b[i] = 48 + v % 10
        v //= 10
        if v == 0:
            break
    return n + d


@micropython.viper
def _crc_table(tab):
    """CRC-32 (IEEE 802.3, reflected 0xEDB88320, as binascii.crc32) nibble table into array('I', 16),
    in machine words: the Python-int way makes big ints on 32-bit ports (past 2**30). A nibble table
    (two lookups a byte) rather than a byte table: 64 B instead of 1 KB of the loop's heap."""
    t = ptr32(tab)
    # built at run time: a constant past 2**30 (even one the compiler folds) is an object to viper on 32-bit ports
    poly = 0xEDB8
    poly = (poly << 16) | 0x8320
    low31 = 0x7FFF
    low31 = (low31 << 16) | 0xFFFF  # masks the sign after a shift right: a logical shift
    i = 0
    while i < 16:
        c = i
        k = 0
        while k < 4:
            if c & 1:
                c = ((c >> 1) & low31) ^ poly
            else:
                c = (c >> 1) & low31
            k += 1
        t[i] = c
        i += 1


_CRC_T = array("I", bytes(64))
_crc_table(_CRC_T)
del _crc_table  # run once: its native code would stay in the loop's heap on rp2


@micropython.viper
def _crc_line(buf, n: int, tab) -> int:
    """Append " " + the CRC-32 of buf[:n] in 8 hex digits + "\n" at buf[n]; return the new length.
    Viper, 32-bit patterns only: binascii.crc32 returns an int up to 2**32, a big int (heap) on rp2
    and esp32 three times in four, and so would every shift of it."""
    b = ptr8(buf)
    t = ptr32(tab)
    h = ptr8(_HEX)
    c = -1
    i = 0
    while i < n:
        x = b[i]
        c = int(t[(c ^ x) & 0xF]) ^ ((c >> 4) & 0xFFFFFFF)
        c = int(t[(c ^ (x >> 4)) & 0xF]) ^ ((c >> 4) & 0xFFFFFFF)
        i += 1
    c = c ^ -1
    b[n] = 32
    k = 8
    while k > 0:
        b[n + k] = h[c & 0xF]
        c = c >> 4
        k -= 1
    b[n + 9] = 10
    return n + 10


@micropython.viper
def _array_digits(buf, n: int, arr, cnt: int) -> int:
    """The cnt entries of an int array, comma-separated, at buf[n]; returns the index after them.
    _digits inlined: a call per entry cost ~25 us of the RP2040's 30 per entry (bench/rp2040)."""
    b = ptr8(buf)
    i = 0
    while i < cnt:
        if i:
            b[n] = 44  # ','
            n += 1
        v = int(arr[i])
        if v < 0:
            b[n] = 45  # '-'
            n += 1
            v = -v
        d = 1
        x = v
        while x >= 10:
            x //= 10
            d += 1
        j = n + d
        while True:
            j -= 1
            b[j] = 48 + v % 10
            v //= 10
            if v == 0:
                break
        n += d
        i += 1
    return n


@micropython.viper
def _key_at(buf, n: int, key) -> int:
    """`"key":` at buf[n], after a ',' unless it opens the object (the byte before is '{'); returns
    the index after it. One call per field instead of a Python-level loop over the key's bytes."""
    b = ptr8(buf)
    k = ptr8(key)
    m = int(len(key))
    if b[n - 1] != 123:
        b[n] = 44  # ','
        n += 1
    b[n] = 34
    n += 1
    i = 0
    while i < m:
        b[n + i] = k[i]
        i += 1
    n += m
    b[n] = 34
    b[n + 1] = 58  # ':'
    return n + 2


@micropython.viper
def _put(buf, n: int, s) -> int:
    """The bytes of s at buf[n]; returns the index after them."""
    b = ptr8(buf)
    c = ptr8(s)
    m = int(len(s))
    i = 0
    while i < m:
        b[n + i] = c[i]
        i += 1
    return n + m


class FrameWriter:
    """Builds `#topic {json} CRC\\n` into a fixed buffer and writes it to `out`, whose write(buf, n)
    sends the first n bytes of buf (a MicroPython stream's write(buf, max_len)): no slice per frame.
    Fields go in with one viper call each where they fit; near the end of the buffer byte by byte,
    counting what does not fit (`overflows`)."""

    def __init__(self, out, size=_MAX_FRAME):
        self.out = out
        self.buf = bytearray(size)
        self.n = 0
        self.overflows = 0
        self._lim = size - 11  # keep room for " CRCCRCCR\n" (an attribute: len() is a ~12 us call on an RP2040)

    def _byte(self, b):
        if self.n < len(self.buf) - 11:  # keep room for " CRCCRCCR\n"
            self.buf[self.n] = b
            self.n += 1
        else:
            self.overflows += 1

    def _bytes(self, s):
        for b in s:
            self._byte(b)

    def begin(self, topic):
        buf = self.buf
        if len(topic) + 14 >= len(buf):  # no room (a tiny buffer): byte by byte
            self.n = 0
            self._byte(35)  # '#'
            self._bytes(topic)
            self._byte(32)
            self._byte(123)  # '{'
            return
        buf[0] = 35  # '#'
        n = _put(buf, 1, topic)
        buf[n] = 32
        buf[n + 1] = 123  # '{'
        self.n = n + 2

    def _key(self, key):
        n = self.n
        if n + len(key) + 4 >= len(self.buf) - 11:  # near the end: byte by byte, counting overflows
            if self.buf[n - 1] != 123:
                self._byte(44)  # ','
            self._byte(34)
            self._bytes(key)
            self._byte(34)
            self._byte(58)  # ':'
            return
        self.n = _key_at(self.buf, n, key)

    def _int(self, v):
        if v is None:
            self._bytes(b"null")
            return
        buf = self.buf
        n = self.n
        if n + 21 >= len(buf) - 11 or not -0x3FFFFFFF <= v <= 0x3FFFFFFF:
            self._int_slow(v)
            return
        self.n = _digits(buf, n, v)

    def _int_slow(self, v):
        if v < 0:
            self._byte(45)
            v = -v
        if v == 0:
            self._byte(48)
            return
        start = self.n
        while v:
            self._byte(48 + v % 10)
            v //= 10
        # digits went in backwards: reverse them in place
        i, j = start, self.n - 1
        buf = self.buf
        while i < j:
            buf[i], buf[j] = buf[j], buf[i]
            i += 1
            j -= 1

    @micropython.native
    def int(self, key, v):
        buf = self.buf
        n = self.n
        if v is None or n + len(key) + 26 >= self._lim or not -0x3FFFFFFF <= v <= 0x3FFFFFFF:
            self._key(key)
            self._int(v)
            return
        self.n = _digits(buf, _key_at(buf, n, key), v)

    @micropython.native
    def ints(self, key, arr, n=-1):
        """A list of ints; entries that are None become null."""
        if n < 0:
            n = len(arr)
        buf = self.buf
        k = self.n
        if k + len(key) + 12 * n + 6 < self._lim:
            # room for the key and n entries of up to 11 characters and a comma each: no bounds checks
            k = _key_at(buf, k, key)
            buf[k] = 91  # '['
            if type(arr) is array:  # an int array ('h', 'i'): no None, every entry fits a machine word
                k = _array_digits(buf, k + 1, arr, n)
            else:
                k = self._list(buf, k + 1, arr, n)
                if k < 0:  # it went the careful way (self.n is where it got to)
                    self._byte(93)
                    return
            buf[k] = 93  # ']'
            self.n = k + 1
            return
        self._key(key)
        self._byte(91)  # '['
        for i in range(n):
            if i:
                self._byte(44)  # ','
            v = arr[i]
            k = self.n
            if v is not None and k + 21 < len(buf) - 11 and -0x3FFFFFFF <= v <= 0x3FFFFFFF:
                self.n = _digits(buf, k, v)
            else:
                self._int(v)
        self._byte(93)

    @micropython.native
    def _list(self, buf, k, arr, n):
        # ints()' list entries with room for them: small ints and None in place; from the first other
        # one (a big int) on, the careful way (returns -1 then)
        for i in range(n):
            if i:
                buf[k] = 44  # ','
                k += 1
            v = arr[i]
            if v is None:
                k = _put(buf, k, b"null")
            elif -0x3FFFFFFF <= v <= 0x3FFFFFFF:
                k = _digits(buf, k, v)
            else:
                self.n = k
                for j in range(i, n):
                    if j > i:
                        self._byte(44)
                    self._int(arr[j])
                return -1
        return k

    def str(self, key, s):
        self._key(key)
        if s is None:
            self._bytes(b"null")
            return
        self._byte(34)
        for ch in s.encode() if isinstance(s, str) else s:
            if ch == 34 or ch == 92:  # '"' or '\'
                self._byte(92)
                self._byte(ch)
            elif ch < 32 or ch > 126:
                self._byte(63)  # '?': keep frames printable ASCII
            else:
                self._byte(ch)
        self._byte(34)

    def bool(self, key, v):
        self._key(key)
        self._bytes(b"true" if v else b"false")

    def end(self):
        """Close the object, append the CRC and send the line."""
        self._byte(125)  # '}'
        self.n = _crc_line(self.buf, self.n, _CRC_T)
        self.out.write(self.buf, self.n)


class LineReader:
    """Collects command bytes into lines; over-long and non-printable lines are flagged, not lost silently.
    A line ends at `\r`, `\n` or `\r\n` (one end: terminals send `\r` for Enter, scripts `\n`);
    spaces around it are dropped."""

    TOO_LONG = 1
    BAD_BYTES = 2

    def __init__(self, size=_MAX_CMD):
        self.buf = bytearray(size)
        self.n = 0
        self.error = 0
        self._cr = False  # the last byte ended a line with '\r': a '\n' right after it belongs to that end

    def feed(self, b):
        """Feed one byte; return True when a line (or an error for one) is complete."""
        cr = self._cr
        self._cr = b == 13
        if b == 13:
            return True
        if b == 10:
            return not cr
        if b < 32 or b > 126:
            self.error |= self.BAD_BYTES
            return False
        if self.n >= len(self.buf):
            self.error |= self.TOO_LONG
            return False
        self.buf[self.n] = b
        self.n += 1
        return False

    def take(self):
        """Return (text, error) for the completed line, without surrounding spaces, and start a new one."""
        err = self.error
        i, j = 0, self.n
        while i < j and self.buf[i] == 32:
            i += 1
        while j > i and self.buf[j - 1] == 32:
            j -= 1
        text = "" if err else bytes(self.buf[i:j]).decode()
        self.n = 0
        self.error = 0
        return text, err
