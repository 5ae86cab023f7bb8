"""Host side of the wire protocol (docs/protocol.md): frame encoder, line decoder, stream decoder.

A frame is ``#<topic> <compact JSON object> <CRC-32 as 8 upper-case hex>\\n``. The stream decoder
never raises on input: bad lines are counted by kind and dropped; a valid frame is never lost,
even when glued to noise without a newline (it is found again from its ``#``).
"""
import json
import zlib

FORMAT = 1          # wire format version this package speaks (``fmt`` in ``hdr``)
MAX_LINE = 1024     # bytes per line, newline excluded
_TOPIC_OK = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789_")
_HEX_UP = frozenset(b"0123456789ABCDEF")
try:  # a dependency (pyproject); 2x faster than json here, same results for valid frames
    from orjson import loads as _loads
except ImportError:  # pragma: no cover  (still works without it, at half the speed)
    _loads = json.loads  # type: ignore[assignment]

# bit k of `alarm`, `fault`, `fet` in `rep` is the k-th name (docs/protocol.md; tests/t0/test_contract_names.py
# holds these, the firmware's tables and protocol_vectors.json's "bits" to each other)
ALARM_BITS = ("cell_ov", "cell_uv", "ot_chg", "ot_dsg", "oc_chg", "oc_dsg", "imbalance", "open_wire")
FAULT_BITS = ("afe", "afe_crc", "current", "ntc", "store", "cmd", "no_temp", "cal", "v_stack", "v_pack", "i_cross",
              "i_stuck", "t_cross")
FET_BITS = ("chg", "dsg", "afe_chg", "afe_dsg")  # `fet`: bit set = that power path closed / that AFE FET on
FET_WORDS = ("charge", "discharge", "AFE charge", "AFE discharge")  # how live and plot name the FET_BITS
# `prot`: the AFE's latched protections (BQ76952 Safety Status A/B, packed; Battery Status PF)
PROT_BITS = ("cuv", "cov", "occ", "ocd1", "ocd2", "scd", "utc", "utd", "utint", "otc", "otd", "otint", "otf", "pf")


def power_path(fet):
    """`fet` as words: 'closed (charge, discharge)', 'open (charge, discharge)', 'charge closed, discharge
    open' …; None when the report has no (or no valid) `fet` (a firmware from before the field)."""
    if type(fet) is not int or not 0 <= fet <= 15:
        return None
    fet &= 3  # the path as the firmware drives it (bits 2-3 are the AFE's own FETs: afe_fets())
    if fet in (0, 3):
        return "%s (%s)" % ("closed" if fet else "open", ", ".join(FET_WORDS[:2]))
    return ", ".join("%s %s" % (n, "closed" if fet >> i & 1 else "open") for i, n in enumerate(FET_WORDS[:2]))


def balancing_cells(bal):
    """`bal` in `rep` (bit k = cell k+1 bleeding through its balancing resistor) as 1-based cell
    numbers, () when none; None when the report has no valid `bal` (a firmware from before the field)."""
    if type(bal) is not int or not 0 <= bal < 1 << 32:
        return None
    return tuple(k + 1 for k in range(bal.bit_length()) if bal >> k & 1)


def afe_fets(fet):
    """The AFE's CHG/DSG drivers from `fet` bits 2-3, as words ('CHG on, DSG off'); None without `fet`."""
    if type(fet) is not int or not 0 <= fet <= 15:
        return None
    return "CHG %s, DSG %s" % ("on" if fet & 4 else "off", "on" if fet & 8 else "off")


class FrameError(ValueError):
    """A line that is not a valid frame; ``kind`` is 'noise', 'crc', 'malformed' or 'oversize'."""

    def __init__(self, kind, msg):
        ValueError.__init__(self, msg)
        self.kind = kind


class FormatError(ValueError):
    """The device speaks a wire format this package does not know."""


def bits_names(mask, names):
    mask = int(mask or 0)
    return [n for i, n in enumerate(names) if mask >> i & 1] + (
        ["bit%d" % i for i in range(len(names), mask.bit_length()) if mask >> i & 1])


def encode_frame(topic, fields):
    """The wire bytes of one frame (used by fake devices in tests and by benchmarks)."""
    body = b"#" + topic.encode() + b" " + json.dumps(fields, separators=(",", ":")).encode()
    return body + b" %08X\n" % zlib.crc32(body)


_topic_cache: dict = {}


def _topic_valid(t):
    ok = _topic_cache.get(t)
    if ok is None:
        ok = 1 <= len(t) <= 8 and all(c in _TOPIC_OK for c in t)
        if len(_topic_cache) < 256:
            _topic_cache[t] = ok
    return ok


def decode_line(line):
    """Decode one line (bytes, with or without its line ending) → (topic, fields dict).
    Raises FrameError naming what is wrong."""
    if line.endswith(b"\n"):
        line = line[:-1]
    if line.endswith(b"\r"):
        line = line[:-1]
    n = len(line)
    if n > MAX_LINE:
        raise FrameError("oversize", "line of %d bytes (max %d)" % (n, MAX_LINE))
    if not line.startswith(b"#"):
        raise FrameError("noise", "does not start with '#'")
    if n < 13 or line[-9] != 0x20:  # '#t {} XXXXXXXX' is the shortest frame
        raise FrameError("malformed", "no CRC field")
    crc = line[-8:]
    body = line[:-9]
    if crc != b"%08X" % zlib.crc32(body):
        if all(c in _HEX_UP for c in crc):
            raise FrameError("crc", "CRC mismatch")
        raise FrameError("malformed", "CRC is not 8 upper-case hex digits")
    sp = body.find(b" ")
    if sp < 0:
        raise FrameError("malformed", "no space after topic")
    topic = body[1:sp]
    if not _topic_valid(topic):
        raise FrameError("malformed", "bad topic %r" % topic[:16])
    try:
        fields = _loads(body[sp + 1:])
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        raise FrameError("malformed", "JSON does not parse") from None
    if type(fields) is not dict:
        raise FrameError("malformed", "JSON is not an object")
    return topic.decode(), fields


class Decoder:
    """Incremental decoder: ``feed(bytes)`` → list of (topic, fields) for every valid frame completed.

    Counters: ``lines`` (complete lines seen), ``frames``, ``crc_errors``, ``malformed``, ``noise``
    (lines not starting with '#', e.g. REPL output), ``oversize``. ``fmt`` is the format from the
    last ``hdr``; a ``hdr`` with another format sets ``fmt_error`` (a message naming both versions)."""

    def __init__(self, max_line=MAX_LINE):
        self.max_line = max_line
        self._pending = b""
        self.lines = self.frames = self.crc_errors = self.malformed = self.noise = self.oversize = 0
        self.fmt = None
        self.fmt_error = None
        self.hdr = None
        self._topics = {}  # b"#topic" -> "topic", learnt from frames that passed the full check

    @property
    def errors(self):
        return self.crc_errors + self.malformed + self.oversize

    def feed(self, data):
        out = []
        if self._pending:
            data = self._pending + data
        parts = data.split(b"\n")
        rest = parts.pop()
        if len(rest) > self.max_line:
            rest = self._trim(rest)
        self._pending = rest
        if b"\r" in data:
            parts = [ln[:-1] if ln[-1:] == b"\r" else ln for ln in parts]
        if parts and self._topics:
            msgs = self._batch(parts)
            if msgs is not None:
                self.lines += len(msgs)
                self.frames += len(msgs)
                return msgs
        # fast path for well-formed frames; anything unusual goes through _line
        crc32, loads, topics, append, maxl = zlib.crc32, _loads, self._topics, out.append, self.max_line
        ok = 0
        for line in parts:
            if len(line) <= maxl and line[:1] == b"#" and line[-9:-8] == b" ":
                body = line[:-9]
                if line[-8:] == b"%08X" % crc32(body):
                    sp = body.find(b" ")
                    topic = topics.get(body[:sp])
                    if topic is not None and topic != "hdr":
                        try:
                            fields = loads(body[sp + 1:])
                        except ValueError:
                            fields = None
                        if type(fields) is dict:
                            append((topic, fields))
                            ok += 1
                            continue
            self._line(line, out)
        self.lines += ok
        self.frames += ok
        return out

    def _batch(self, parts):
        """All lines valid frames of known topics (the steady state)? Decode them with one JSON
        call; None sends the caller down the per-line path."""
        crc32, topics = zlib.crc32, self._topics
        maxl = self.max_line
        try:
            for ln in parts:  # a plain loop: the cheapest per-line check in CPython
                if crc32(ln[:-9]) != int(ln[-8:], 16) or ln[-9] != 32 or len(ln) > maxl or ln[-8:] != ln[-8:].upper():
                    return None
        except (ValueError, IndexError):  # not hex, or too short: the per-line path sorts it out
            return None
        sp = [ln.find(b" ") for ln in parts]
        tl = [topics.get(ln[:s]) for ln, s in zip(parts, sp)]  # keys include the '#'

        if None in tl:
            return None
        try:
            objs = _loads(b"[" + b",".join([ln[s + 1:-9] for ln, s in zip(parts, sp)]) + b"]")
        except ValueError:
            return None
        if len(objs) != len(parts) or not all(type(o) is dict for o in objs):
            return None
        return list(zip(tl, objs))

    def flush(self):
        """Decode what is left without a newline (end of a capture file)."""
        out = []
        if self._pending:
            line, self._pending = self._pending, b""
            self._line(line, out)
        return out

    def _trim(self, rest):
        # too long without a newline: keep only from the last '#' that could still start a frame
        self.oversize += 1
        k = rest.rfind(b"#", len(rest) - self.max_line)
        return rest[k:] if k >= 0 else b""

    def _line(self, line, out):
        self.lines += 1
        try:
            msg = decode_line(line)
        except FrameError as e:
            # a frame glued to noise without a newline: retry from each later '#'
            k = line.find(b"#", 1)
            while k >= 0:
                try:
                    msg = decode_line(line[k:])
                    break
                except FrameError:
                    k = line.find(b"#", k + 1)
            else:
                self._count(e.kind)
                return
            self._count(e.kind)
        if msg[0] == "hdr":
            self._hdr(msg[1])
        elif len(self._topics) < 64:
            self._topics[b"#" + msg[0].encode()] = msg[0]
        self.frames += 1
        out.append(msg)

    def _count(self, kind):
        if kind == "crc":
            self.crc_errors += 1
        elif kind == "noise":
            self.noise += 1
        elif kind == "oversize":
            self.oversize += 1
        else:
            self.malformed += 1

    def _hdr(self, f):
        self.hdr = f
        self.fmt = f.get("fmt")
        if self.fmt != FORMAT:
            self.fmt_error = ("device speaks protocol format %r (firmware %s); this packwatch speaks format %d"
                              % (self.fmt, f.get("fw", "?"), FORMAT))
        else:
            self.fmt_error = None


def decode_stream(chunks):
    """Generator: (topic, fields) for every valid frame in an iterable of byte chunks."""
    d = Decoder()
    for c in chunks:
        yield from d.feed(c)
    yield from d.flush()
