"""The packwatch log CSV: one reader and one writer shared by log, replay, plot, fit and estimate.

Schema: ``t_s`` (s since log start), ``current_a`` (+ = charging), ``cell01_v`` … ``cellNN_v``,
optional ``temp1_c`` …, then logger columns (``host_utc`` ISO text, ``dev_ms``, ``seq``, ``stack_v``,
``soc_pct``, ``soc_sigma_pct``, ``alarm``, ``fault``, ``fet``: power-path and AFE FET bits, ``prot``: the
AFE's latched protections, ``bal``: the cells balancing (bit k = cell k+1); empty/nan in logs of a firmware without them). ``# key: value`` comment lines before the
header carry metadata (``fmt``, ``fw``, ``units`` …). Readers ignore columns they do not know.

The reader parses in blocks of whole lines with numpy's C parser so a week of 10 Hz data
(6 million rows) reads in seconds; ``iter_chunks`` lets callers (plot) reduce block by block
without holding every row.
"""
import io
import os
import re

import numpy as np

LOG_FORMAT = 1          # version of this CSV layout (meta key ``log_format``)
PROTOCOL_FORMATS = (1,)  # wire format versions (``fmt`` from the device hdr) this package understands
CORE = ("t_s", "current_a")
# a new column needs no new LOG_FORMAT: readers ignore what they do not know, and take a log without it
LOGGER_COLS = ("host_utc", "dev_ms", "seq", "stack_v", "soc_pct", "soc_sigma_pct", "alarm", "fault", "fet", "prot", "bal")
UNITS = {"t_s": "s", "current_a": "A", "cell": "V", "temp": "degC", "host_utc": "ISO8601",
         "dev_ms": "ms", "seq": "count", "stack_v": "V", "soc_pct": "%", "soc_sigma_pct": "%",
         "alarm": "bitmask", "fault": "bitmask", "fet": "bitmask", "prot": "bitmask", "bal": "bitmask"}
_CELL_RE = re.compile(r"^cell(\d+)_v$")
_TEMP_RE = re.compile(r"^temp(\d+)_c$")
_BLOCK = 8 << 20  # bytes per parse block


def cell_columns(names):
    """The cell voltage column names of ``names`` ('cell01_v' …), in cell order."""
    found = [(int(m.group(1)), n) for n in names for m in [_CELL_RE.match(n)] if m]
    return [n for _, n in sorted(found)]


def temp_columns(names):
    found = [(int(m.group(1)), n) for n in names for m in [_TEMP_RE.match(n)] if m]
    return [n for _, n in sorted(found)]


def header_columns(n_cells, n_temps, extra_cols=LOGGER_COLS):
    return (list(CORE) + ["cell%02d_v" % (i + 1) for i in range(n_cells)]
            + ["temp%d_c" % (i + 1) for i in range(n_temps)] + list(extra_cols))


class Log:
    """A whole log in memory. ``cols`` maps every read column to an array (text columns: object)."""

    def __init__(self, cols, names, meta, path=None):
        self.cols = cols
        self.names = names
        self.meta = meta
        self.path = path
        self.cell_names = cell_columns(names)
        self.temp_names = temp_columns(names)
        self.t_s = cols["t_s"]
        self.current_a = cols["current_a"]
        n = len(self.t_s)
        self.cells_v = (np.column_stack([cols[c] for c in self.cell_names]) if self.cell_names
                        else np.empty((n, 0)))
        self.temps_c = np.column_stack([cols[c] for c in self.temp_names]) if self.temp_names else None
        self.n_cells = len(self.cell_names)

    def __len__(self):
        return len(self.t_s)

    def __repr__(self):
        return "<Log %s: %d rows, %d cells, %d temps>" % (
            self.path, len(self), self.n_cells, 0 if self.temps_c is None else self.temps_c.shape[1])

    def to_pandas(self):
        import pandas as pd  # optional dependency
        return pd.DataFrame({k: self.cols[k] for k in self.names if k in self.cols})


def _parse_meta(line, meta):
    body = line[1:].strip()
    if ":" in body:
        k, v = body.split(":", 1)
        k = k.strip()
        if k and " " not in k:
            meta[k] = v.strip()


def check_meta(meta, path="log"):
    """Refuse a log written in a format this package does not know, naming both versions."""
    for key, known in (("log_format", (LOG_FORMAT,)), ("fmt", PROTOCOL_FORMATS)):
        if key in meta:
            try:
                v = int(meta[key])
            except ValueError:
                raise ValueError("%s: unreadable %s %r" % (path, key, meta[key])) from None
            if v not in known:
                raise ValueError("%s: written with %s %d (firmware %s); this packwatch reads %s %s"
                                 % (path, key, v, meta.get("fw", "?"), key,
                                    "/".join(str(k) for k in known)))


def read_header(f, path="log"):
    """Read meta comment lines and the column header from binary file ``f``; returns (names, meta)."""
    meta = {}
    while True:
        raw = f.readline()
        if not raw:
            raise ValueError("%s: empty log (no header line)" % path)
        line = raw.decode("utf-8", "replace").strip()
        if not line:
            continue
        if line.startswith("#"):
            _parse_meta(line, meta)
            continue
        if "\ufffd" in line or "\x00" in line:
            raise ValueError("%s: not a packwatch log: binary data, not CSV text" % path)
        names = [n.strip() for n in line.split(",")]
        break
    check_meta(meta, path)
    missing = [c for c in CORE if c not in names]
    if missing or not cell_columns(names):
        raise ValueError("%s: not a packwatch log: missing column(s) %s (header: %s)" % (
            path, ", ".join(missing + ([] if cell_columns(names) else ["cellNN_v"])), line[:120]))
    return names, meta


def _to_float(s):
    s = s.strip()
    if not s or s in ("null", "None", "nan", "NaN"):
        return np.nan
    return float(s)


def _slow_block(lines, idx_num, idx_txt):
    """Per-line parse for a block the fast parser refused (empty fields, short rows, junk)."""
    num = np.full((len(lines), len(idx_num)), np.nan)
    txt = [[] for _ in idx_txt]
    keep = np.ones(len(lines), bool)
    for r, line in enumerate(lines):
        parts = line.split(",")
        try:
            num[r] = [_to_float(parts[i]) if i < len(parts) else np.nan for i in idx_num]
        except ValueError:
            keep[r] = False  # a corrupt row (e.g. a torn write from a foreign tool): skip it
            continue
        for k, i in enumerate(idx_txt):
            txt[k].append(parts[i].strip() if i < len(parts) else "")
    return num[keep], txt


def _pandas():
    try:
        import pandas
        return pandas
    except ImportError:
        return None


def _probe_text(names, first_line):
    """Names of the columns whose first value is not a number (host_utc and unknown text)."""
    probe = first_line.split(",")
    txt = set()
    for i, n in enumerate(names):
        if i < len(probe):
            try:
                _to_float(probe[i])
            except ValueError:
                txt.add(n)
    return txt


def iter_blocks(path, start=None, end=None, block=_BLOCK):
    """Yield (names, meta, bytes) of whole data lines; [start, end) is a byte range (for splitting
    a big log between processes: a line belongs to the range holding its first byte)."""
    with open(path, "rb") as f:
        names, meta = read_header(f, str(path))
        data_start = f.tell()
        size = os.fstat(f.fileno()).st_size
        pos = data_start if start is None else max(start, data_start)
        end = size if end is None else min(end, size)
        if pos > data_start:  # align to the next line start
            f.seek(pos - 1)
            f.readline()
            pos = f.tell()
        f.seek(pos)
        while pos < end:
            data = f.read(min(block, end - pos))
            if not data:
                break
            pos += len(data)
            if not data.endswith(b"\n"):
                data += f.readline()  # finish the line the range cut (the next range skips it)
                pos = f.tell()
            yield names, meta, data


def parse_block(data, names, want, txt_names=()):
    """Parse bytes of whole CSV lines into {col: array} for the columns in ``want``."""
    if b"#" in data:
        data = b"\n".join(ln for ln in data.split(b"\n") if not ln.startswith(b"#"))
    if not data.strip():
        return {n: np.empty(0, dtype=object if n in txt_names else np.float64) for n in want}
    pd = _pandas()
    if pd is not None:
        df = pd.read_csv(io.BytesIO(data), header=None, names=range(len(names)), usecols=[names.index(n) for n in want],
                         engine="c", na_values=["nan", "null", "None", ""], keep_default_na=False,
                         on_bad_lines="skip", index_col=False)
        out = {}
        for n in want:
            col = df[names.index(n)]
            if n in txt_names:
                out[n] = col.astype(str).to_numpy(dtype=object)
            else:
                if not pd.api.types.is_numeric_dtype(col.dtype):  # junk in a field (pandas 3: dtype str)
                    col = pd.to_numeric(col, errors="coerce")
                out[n] = col.to_numpy(dtype=np.float64)
        return out
    idx_num = [names.index(n) for n in want if n not in txt_names]
    num_names = [n for n in want if n not in txt_names]
    txt = [n for n in want if n in txt_names]
    text = data.decode("utf-8", "replace")
    out = {}
    try:
        if not idx_num:
            raise ValueError
        arr = np.loadtxt(io.StringIO(text), delimiter=",", usecols=idx_num, ndmin=2,
                         dtype=np.float64, comments=None)
        for k, n in enumerate(num_names):
            out[n] = arr[:, k]
        lines = [ln for ln in text.split("\n") if ln.strip()] if txt else []
        for n in txt:
            i = names.index(n)
            out[n] = np.array([ln.split(",")[i] for ln in lines], dtype=object)
    except (ValueError, IndexError):
        lines = [ln for ln in text.split("\n") if ln.strip()]
        num, cols = _slow_block(lines, idx_num, [names.index(n) for n in txt])
        for k, n in enumerate(num_names):
            out[n] = num[:, k]
        for k, n in enumerate(txt):
            out[n] = np.array(cols[k], dtype=object)
    return out


def iter_chunks(path, columns=None, start=None, end=None, block=_BLOCK):
    """Yield (names, meta, {col: array}) per block of whole lines; ``columns`` limits what is parsed."""
    txt_names = None
    for names, meta, data in iter_blocks(path, start, end, block):
        want = [n for n in names if columns is None or n in columns]
        if txt_names is None:
            first = next((ln for ln in data.split(b"\n", 64) if ln and not ln.startswith(b"#")), b"")
            txt_names = _probe_text(names, first.decode("utf-8", "replace"))
        yield names, meta, parse_block(data, names, want, txt_names)


def read_log(path, columns=None):
    """Read a log CSV into a :class:`Log`. ``columns`` (optional) limits which columns are kept;
    t_s, current_a and the cell columns are always read."""
    if columns is not None:
        columns = set(columns) | set(CORE)
    parts = {}
    names, meta = None, {}
    for names, meta, out in iter_chunks(path, columns=None if columns is None else _with_cells(path, columns)):
        for k, v in out.items():
            parts.setdefault(k, []).append(v)
    if names is None:  # header only
        with open(path, "rb") as f:
            names, meta = read_header(f, str(path))
    keep = [n for n in names if columns is None or n in columns or _CELL_RE.match(n)]
    cols = {}
    for n in keep:
        chunks = parts.get(n)
        if chunks:
            cols[n] = np.concatenate(chunks) if len(chunks) > 1 else chunks[0]
        else:
            cols[n] = np.empty(0)
    return Log(cols, keep, meta, path=str(path))


def _with_cells(path, columns):
    with open(path, "rb") as f:
        names, _ = read_header(f, str(path))
    return set(columns) | set(cell_columns(names))


def _fmt(v, spec):
    if v is None:
        return "nan"
    if isinstance(v, float) and v != v:
        return "nan"
    return spec % v


class LogWriter:
    """Append rows to a log CSV. Rows are buffered and written as whole lines with one ``os.write``
    per :meth:`flush`, so killing the writer at any instant never leaves half a row."""

    def __init__(self, path, n_cells, n_temps=0, extra_cols=LOGGER_COLS, meta=None, autoflush=False):
        self.path = str(path)
        self.n_cells = n_cells
        self.n_temps = n_temps
        self.extra_cols = list(extra_cols)
        self.columns = header_columns(n_cells, n_temps, self.extra_cols)
        self.autoflush = autoflush
        self.rows = 0
        self.bytes = 0
        self._buf = []
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        if os.fstat(self._fd).st_size == 0:
            head = ["# packwatch log", "# log_format: %d" % LOG_FORMAT]
            for k, v in (meta or {}).items():
                head.append("# %s: %s" % (k, v))
            head.append("# units: " + " ".join("%s=%s" % (c, _unit(c)) for c in self.columns))
            head.append(",".join(self.columns))
            self._write(("\n".join(head) + "\n").encode())
        self._spec_extra = [_EXTRA_FMT.get(c, "%s") for c in self.extra_cols]

    def _write(self, data):
        n = os.write(self._fd, data)
        while n < len(data):  # short write (disk full / signal): finish the line
            data = data[n:]
            n = os.write(self._fd, data)
        self.bytes += len(data)

    def format_row(self, t_s, current_a, cells_v, temps_c=None, extra=None):
        parts = ["%.3f" % t_s, _fmt(current_a, "%.3f")]
        parts += [_fmt(v, "%.3f") for v in cells_v]
        if self.n_temps:
            temps = list(temps_c or ())[:self.n_temps]
            temps += [None] * (self.n_temps - len(temps))
            parts += [_fmt(v, "%.1f") for v in temps]
        if self.extra_cols:
            if isinstance(extra, dict):
                vals = [extra.get(c) for c in self.extra_cols]
            else:
                vals = list(extra or ()) + [None] * (len(self.extra_cols) - len(extra or ()))
            parts += [_fmt(v, s) for v, s in zip(vals, self._spec_extra)]
        return ",".join(parts) + "\n"

    def write_row(self, t_s, current_a, cells_v, temps_c=None, extra=None):
        if len(cells_v) != self.n_cells:
            raise ValueError("row has %d cells, log has %d" % (len(cells_v), self.n_cells))
        self._buf.append(self.format_row(t_s, current_a, cells_v, temps_c, extra))
        self.rows += 1
        if self.autoflush:
            self.flush()

    def flush(self):
        if self._buf:
            data = "".join(self._buf).encode()
            self._buf = []
            self._write(data)

    def close(self):
        if self._fd is not None:
            self.flush()
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


_EXTRA_FMT = {"host_utc": "%s", "dev_ms": "%d", "seq": "%d", "stack_v": "%.3f", "soc_pct": "%.1f",
              "soc_sigma_pct": "%.1f", "alarm": "%d", "fault": "%d", "fet": "%d", "prot": "%d", "bal": "%d"}


def _unit(col):
    if _CELL_RE.match(col):
        return UNITS["cell"]
    if _TEMP_RE.match(col):
        return UNITS["temp"]
    return UNITS.get(col, "-")
