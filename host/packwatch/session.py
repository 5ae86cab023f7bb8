"""Turns a board's decoded telemetry into log rows and stream statistics: used by the live logger
(packwatch.logger) and by `replay`, so both write the very same CSV."""
import datetime

from .protocol import Decoder, ALARM_BITS, FAULT_BITS, bits_names

SEQ_MOD = 1 << 30
TICKS_MOD = 1 << 30
STALE_MIN_S = 3.0
HOLD_MAX, HOLD_S = 50, 2.0  # reports held back (at most, for at most s of host time) until the first hdr


def iso_utc(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


class Session:
    """Turns decoded messages into log rows and keeps the stream statistics.

    Shared by the live logger and `replay`: feed raw lines with their host time through
    ``lines(t, [bytes, ...])``; rows go to the writer made by ``open_writer(n_cells, n_temps, meta)``."""

    def __init__(self, open_writer, raw_writer=None):
        self.dec = Decoder()
        self.open_writer = open_writer
        self.raw = raw_writer
        self.writer = None
        self.samples = 0
        self.gaps = 0
        self.reboots = 0
        self.hdr = None
        self.uid = None
        self.last = None          # last rep fields
        self.last_t = None        # host time of the last valid frame
        self.period_s = 1.0
        self.events = []          # (t, name, on)
        self._seq = None
        self._ms = None
        self._anchor = None       # (host t, device ms) mapping device ticks to log time
        self._t0 = None
        self._shape = None
        self._prev_t = None
        self._last_lt = None
        self._held = []           # reports waiting for the first hdr: (t, fields)

    @property
    def crc_errors(self):
        return self.dec.crc_errors

    @property
    def fmt_error(self):
        return self.dec.fmt_error

    def lines(self, t, lines):
        """Process complete lines (bytes without newline) received at host time t."""
        if self.raw is not None:
            self.raw.write_lines(t, lines)
        for topic, f in self.dec.feed(b"\n".join(lines) + b"\n"):
            self.message(t, topic, f)

    def message(self, t, topic, f):
        self.last_t = t
        if topic == "hdr" or (topic == "ok" and f.get("cmd") == "info" and "fmt" in f):
            self._on_hdr(f)
            return
        if topic in ("rep", "cell", "evt"):
            self._on_seq(f.get("seq"), f.get("ms"))
        if topic == "rep":
            if self.writer is None and self.hdr is None and (
                    not self._held or (len(self._held) < HOLD_MAX and t - self._held[0][0] < HOLD_S)):
                # joined mid-stream: reports can overtake the reply to `info`; hold them (briefly) so
                # the file's metadata (fw, board, uid, fmt) is known before its first row
                self._held.append((t, f))
                return
            self._release()
            self._on_rep(t, f)
        elif topic == "evt":
            self.events.append((t, f.get("name"), f.get("on")))

    def _on_hdr(self, f):
        if f.get("fmt") != 1:
            self.dec._hdr(f)  # sets fmt_error for a hdr that came as an ok reply
        if self.hdr is not None and (f.get("boots") != self.hdr.get("boots") or f.get("uid") != self.hdr.get("uid")):
            self.reboots += 1
            self._seq = None
            self._anchor = None
        self.hdr = f
        self.uid = f.get("uid") or self.uid
        if self.dec.fmt_error is None:
            self._release()

    def _release(self):
        held, self._held = self._held, []
        for t, f in held:
            self._on_rep(t, f)

    def _on_seq(self, seq, ms):
        if not isinstance(seq, int):
            return
        if self._seq is not None:
            d = (seq - self._seq - 1) % SEQ_MOD
            if d and isinstance(ms, int) and isinstance(self._ms, int) and seq < self._seq and ms < self._ms:
                self.reboots += 1  # seq and ms both went back: the device restarted unannounced
                self._anchor = None
            elif d:
                self.gaps += d if d < SEQ_MOD // 2 else 0
        self._seq, self._ms = seq, ms

    def _log_time(self, t, ms):
        """Log time: the device clock's spacing (it may run faster than real time on a simulated
        board), re-anchored to host time only at the start, after a reboot and on a new file;
        never goes back."""
        if self._t0 is None:
            self._t0 = t
        if isinstance(ms, int) and self._anchor is not None:
            d = (ms - self._anchor[1]) % TICKS_MOD
            if d < TICKS_MOD // 2:
                lt = self._anchor[0] + d / 1000.0
                self._last_lt = lt
                return lt
        lt = t - self._t0
        if self._last_lt is not None:
            lt = max(lt, self._last_lt + 0.001)
        if isinstance(ms, int):
            self._anchor = (lt, ms)
        self._last_lt = lt
        return lt

    def _on_rep(self, t, f):
        cells = f.get("cell_mv")
        if not isinstance(cells, list) or not cells:
            return
        temps = f.get("t_dc") if isinstance(f.get("t_dc"), list) else []
        shape = (len(cells), len(temps))
        if self.writer is None or shape != self._shape:
            if self.writer is not None:
                self.writer.close()
            meta = {"fmt": 1}
            if self.hdr:
                meta.update({k: self.hdr[k] for k in ("fw", "board", "chem", "uid", "cells") if k in self.hdr})
            meta["start_utc"] = iso_utc(t)
            self.writer = self.open_writer(shape[0], shape[1], meta)
            self._shape = shape
            self._t0 = None
            self._anchor = None
            self._last_lt = None
        self.last = f
        self.samples += 1
        if self._prev_t is not None and t > self._prev_t:  # smoothed report period, for staleness
            self.period_s = 0.8 * self.period_s + 0.2 * min(60.0, t - self._prev_t)
        self._prev_t = t

        def num(k, scale):
            v = f.get(k)
            return v / scale if isinstance(v, (int, float)) else None
        self.writer.write_row(
            self._log_time(t, f.get("ms")), num("i_ma", 1000.0),
            [v / 1000.0 if isinstance(v, (int, float)) else None for v in cells],
            [v / 10.0 if isinstance(v, (int, float)) else None for v in temps],
            {"host_utc": iso_utc(t), "dev_ms": f.get("ms"), "seq": f.get("seq"), "stack_v": num("stack_mv", 1000.0),
             "soc_pct": num("soc_pm", 10.0), "soc_sigma_pct": num("sig_pm", 10.0),
             "alarm": f.get("alarm"), "fault": f.get("fault"),
             "fet": f.get("fet") if type(f.get("fet")) is int else None,
             "prot": f.get("prot") if type(f.get("prot")) is int else None,
             "bal": f.get("bal") if type(f.get("bal")) is int else None})

    def stale(self, now):
        return self.last_t is None or now - self.last_t > max(STALE_MIN_S, 3 * self.period_s)

    def flush(self):
        if self._held and self.last_t is not None and self.last_t - self._held[0][0] >= HOLD_S:
            self._release()  # no hdr is coming: write the reports without it
        # the capture first: a kill between the two writes leaves a raw line without its CSV row
        # (replay recovers it), never a CSV row the capture lacks
        if self.raw is not None:
            self.raw.flush()
        if self.writer is not None:
            self.writer.flush()

    def close(self):
        if not self.dec.fmt_error:
            self._release()
        if self.raw is not None:
            self.raw.close()
        if self.writer is not None:
            self.writer.close()

    def status(self, now, rate=None):
        s = "samples %d" % self.samples
        if rate is not None:
            s += "  %.1f/s" % rate
        s += "  crc %d  bad %d  gaps %d  reboots %d" % (self.dec.crc_errors, self.dec.malformed + self.dec.oversize,
                                                      self.gaps, self.reboots)
        if self.last:
            soc, sig = self.last.get("soc_pm"), self.last.get("sig_pm")
            if isinstance(soc, int):
                s += "  SoC %.1f" % (soc / 10) + ("±%.1f" % (sig / 10) if isinstance(sig, int) else "") + "%"
            al = bits_names(self.last.get("alarm"), ALARM_BITS)
            fl = bits_names(self.last.get("fault"), FAULT_BITS)
            if al:
                s += "  ALARM " + ",".join(al)
            if fl:
                s += "  FAULT " + ",".join(fl)
        if self.stale(now):
            s += "  [STALE]"
        return s
