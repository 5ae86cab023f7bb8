# Protections: each alarm has a threshold, a set delay, a release hysteresis and release delay, and
# over-current / open-wire latch until clear(). Bit numbers and names are docs/protocol.md's.
#
# Allocation-free per check(): all state lives in pre-allocated arrays, and every method keeps few
# locals, because MicroPython puts a frame of more than ~11 slots (args + locals + stack) on the heap.
from array import array

from pwfw.compat import MICROPYTHON, const, micropython, ticks_diff

if not MICROPYTHON:
    from pwfw.compat import ptr32

CELL_OV = const(0)
CELL_UV = const(1)
OT_CHG = const(2)
OT_DSG = const(3)
OC_CHG = const(4)
OC_DSG = const(5)
IMBALANCE = const(6)
OPEN_WIRE = const(7)
# `alarm` in `rep` and the alarm `evt` names: bit k is ALARM_NAMES[k] (the constants above; docs/protocol.md,
# protocol_vectors.json; tests/t0/test_contract_names.py holds them, the host's table and the spec to it)
ALARM_NAMES = ("cell_ov", "cell_uv", "ot_chg", "ot_dsg", "oc_chg", "oc_dsg", "imbalance", "open_wire")

# Everything but imbalance opens the relay: imbalance is a maintenance warning, not a hazard.
_RELAY_MASK = const(0xBF)
# The AFE's FETs per direction: charging stops on cell_ov, ot_chg, oc_chg, open_wire; discharging on
# cell_uv, ot_dsg, oc_dsg, open_wire (the relay, one switch, opens on any _RELAY_MASK alarm).
_CHG_STOP = const(0x95)
_DSG_STOP = const(0xAA)
_CELL_BITS = const(0xC3)  # OV, UV, imbalance, open wire: held while cell readings are implausible
_V_BITS = const(0x43)  # OV, UV, imbalance: not judged on readings that cannot be real
_OC_BITS = const(0x30)
_OW_BIT = const(0x80)
_N = const(8)
EV_N = const(16)
_NOVAL = const(-0x40000000)  # "no value" in the event ring (a small int on every port)


@micropython.viper
def _minmax_cells(cells, n: int, w):
    """_minmax for cell readings (no None): w = array('i') [min, argmin, max, argmax, sum]. Viper:
    machine-word compares, ~4x faster than the native loop; cells may be any int sequence."""
    p = ptr32(w)
    lo = int(cells[0])
    hi = lo
    ilo = 0
    ihi = 0
    tot = lo
    k = 1
    while k < n:
        v = int(cells[k])
        if v < lo:
            lo = v
            ilo = k
        if v > hi:
            hi = v
            ihi = k
        tot += v
        k += 1
    p[0] = lo
    p[1] = ilo
    p[2] = hi
    p[3] = ihi
    p[4] = tot


def _zeros(code, n):
    return array(code, [0] * n)


class Protect:
    def __init__(self, cfg):
        self.cfg = cfg
        self.alarm = 0
        self.ev_count = 0  # events waiting in the ring
        self.ev_lost = 0  # events overwritten because the ring was full (oldest are dropped)
        self._head = 0
        self._eb = bytearray(EV_N)
        self._eo = bytearray(EV_N)
        self._ev = _zeros("i", EV_N)
        self._ei = _zeros("h", EV_N)
        # Per bit: condition to set, condition to release, value and index to report, set delay.
        self._on = bytearray(_N)
        self._off = bytearray(_N)
        self._val = _zeros("i", _N)
        self._idx = _zeros("h", _N)
        self._dly = _zeros("i", _N)
        self._pend = bytearray(_N)  # a set (alarm clear) or release (alarm set) timer is running
        self._t = _zeros("i", _N)  # when that timer started
        # Scratch: 0 min, 1 index of min, 2 max, 3 index of max, 4 sum (cells or temperatures).
        self._w = _zeros("i", 5)
        self._now = 0
        self._hold = 0  # bits not evaluated this sample (input missing or in spike rejection)
        self._latch = 0
        self._old = 0
        self._bad = 0  # cell/stack readings implausible since _bad_t
        self._bad_t = 0
        self._have = 0  # temperature sensors with a reading this sample
        self._dir = 0  # 1 charging, -1 discharging, 0 at rest (|i| <= dir_ma)
        # +1 / -1: the current sensor is at its full scale in that direction (set by App each sample):
        # the true current is at least that, so over-current is raised without waiting for oc_ms
        self.i_sat = 0

    @micropython.native
    def relay_ok(self):
        return not (self.alarm & _RELAY_MASK)

    @micropython.native
    def fets_ok(self):
        """The AFE FETs these alarms allow: bit 0 charge, bit 1 discharge."""
        a = self.alarm
        return (0 if a & _CHG_STOP else 1) | (0 if a & _DSG_STOP else 2)

    @micropython.native
    def check(self, now_ms, cells_mv, stack_mv, i_ma, temps_dc):
        """Evaluate one sample; returns the mask of alarm bits that changed."""
        self._old = self.alarm
        self._now = now_ms
        self._hold = 0
        self._cells(cells_mv, stack_mv)
        self._temps(i_ma, temps_dc)
        self._current(i_ma)
        self._steps()
        return self.alarm ^ self._old

    def clear(self):
        """Clear latched alarms (over-current, open wire); returns the mask cleared. If the condition
        is still there the alarm sets again after its delay."""
        m = self.alarm & (_OC_BITS | _OW_BIT)
        for b in range(_N):
            if (m >> b) & 1:
                self.alarm &= ~(1 << b)
                self._pend[b] = 0
                self._push(b, 0, _NOVAL, -1)
        return m

    @micropython.native
    def pop_event(self):
        """Oldest event as (bit, on, val, idx) — val/idx None when not applicable — or None."""
        if not self.ev_count:
            return None
        k = self._head
        self._head = (k + 1) % EV_N
        self.ev_count -= 1
        v = self._ev[k]
        i = self._ei[k]
        return (self._eb[k], self._eo[k], None if v == _NOVAL else v, None if i < 0 else i)

    @micropython.native
    def _push(self, b, on, val, idx):
        if self.ev_count == EV_N:
            k = self._head
            self._head = (k + 1) % EV_N
            self.ev_lost += 1
        else:
            k = (self._head + self.ev_count) % EV_N
            self.ev_count += 1
        self._eb[k] = b
        self._eo[k] = on
        self._ev[k] = val
        self._ei[k] = idx

    @micropython.native
    def _steps(self):
        cfg = self.cfg
        self._latch = (_OC_BITS if cfg.oc_latch else 0) | (_OW_BIT if cfg.ow_latch else 0)
        alarm = self.alarm
        hold = self._hold
        on = self._on
        pend = self._pend
        for b in range(_N):
            if (hold >> b) & 1:
                continue
            if not (alarm >> b) & 1 and not on[b]:
                pend[b] = 0  # the common case, as in _step: no alarm, no condition
                continue
            self._step(b)  # changes only bit b of the alarm

    @micropython.native
    def _step(self, b):
        m = 1 << b
        if self.alarm & m:
            if (self._latch & m) or not self._off[b]:
                self._pend[b] = 0
                return
            if not self._pend[b]:
                self._pend[b] = 1
                self._t[b] = self._now
            if ticks_diff(self._now, self._t[b]) >= self.cfg.release_ms:
                self.alarm &= ~m
                self._pend[b] = 0
                self._push(b, 0, self._val[b], self._idx[b])
        elif self._on[b]:
            if not self._pend[b]:
                self._pend[b] = 1
                self._t[b] = self._now
            if ticks_diff(self._now, self._t[b]) >= self._dly[b]:
                self.alarm |= m
                self._pend[b] = 0
                self._push(b, 1, self._val[b], self._idx[b])
        else:
            self._pend[b] = 0

    @micropython.native
    def _arm(self, b, x, lim, hyst, val, idx, dly):
        # Alarm while x > lim, release once x < lim - hyst (a low limit is the same on negated values);
        # val/idx are what its event reports, dly its set delay.
        self._on[b] = x > lim
        self._off[b] = x < lim - hyst
        self._val[b] = val
        self._idx[b] = idx
        self._dly[b] = dly

    @micropython.native
    def _rep(self, b, val, idx, dly):
        self._val[b] = val
        self._idx[b] = idx
        self._dly[b] = dly

    @micropython.native
    def _minmax(self, seq):
        # Fills _w with min/argmin/max/argmax/sum over the non-None entries; returns their count.
        w = self._w
        n = 0
        for k in range(len(seq)):
            v = seq[k]
            if v is None:
                continue
            if not n or v < w[0]:
                w[0] = v
                w[1] = k
            if not n or v > w[2]:
                w[2] = v
                w[3] = k
            w[4] = v if not n else w[4] + v
            n += 1
        return n

    @micropython.native
    def _cells(self, cells, stack):
        n = len(cells)
        if n:
            _minmax_cells(cells, n, self._w)
        else:
            self._hold |= _CELL_BITS
            return
        if self._implausible(n, stack):
            return
        self._volts()
        if stack is None:
            self._hold |= _OW_BIT
        else:
            self._wire(self._w[4] - stack)

    @micropython.native
    def _implausible(self, n, stack):
        # A reading no cell can produce (0 V, > 5 V, a stack out of range) is a glitch until it has
        # lasted spike_ms; meanwhile the cell-based alarms keep their timers (neither set nor reset).
        cfg = self.cfg
        w = self._w
        if w[0] >= cfg.spike_lo_mv and w[2] <= cfg.spike_hi_mv and (
            stack is None or n * cfg.spike_lo_mv <= stack <= n * cfg.spike_hi_mv
        ):
            self._bad = 0
            return False
        if not self._bad:
            self._bad = 1
            self._bad_t = self._now
        if ticks_diff(self._now, self._bad_t) < cfg.spike_ms:
            self._hold |= _CELL_BITS
            return True
        # Persistent: no cell reads 0 V or twice its voltage. An open sense wire does exactly that (its
        # cell reads ~0, the neighbour the sum of both, the stack still adds up): a measurement fault,
        # reported as open_wire (relay open), never as an over- or under-voltage of a healthy cell.
        self._hold |= _V_BITS
        self._implausible_wire(stack)
        return True

    @micropython.native
    def _implausible_wire(self, stack):
        w = self._w
        if w[0] < self.cfg.spike_lo_mv:
            self._rep(OPEN_WIRE, w[0], w[1], self.cfg.ow_ms)
        elif w[2] > self.cfg.spike_hi_mv:
            self._rep(OPEN_WIRE, w[2], w[3], self.cfg.ow_ms)
        else:
            self._rep(OPEN_WIRE, stack, -1, self.cfg.ow_ms)
        self._on[OPEN_WIRE] = 1
        self._off[OPEN_WIRE] = 0

    @micropython.native
    def _volts(self):
        cfg = self.cfg
        w = self._w
        self._arm(CELL_OV, w[2], cfg.cell_ov_mv, cfg.cell_ov_hyst_mv, w[2], w[3], cfg.cell_ov_ms)
        self._arm(CELL_UV, -w[0], -cfg.cell_uv_mv, cfg.cell_uv_hyst_mv, w[0], w[1], cfg.cell_uv_ms)
        d = w[2] - w[0]
        self._arm(IMBALANCE, d, cfg.imbal_mv, cfg.imbal_hyst_mv, d, w[1], cfg.imbal_ms)  # idx: the weakest cell

    @micropython.native
    def _wire(self, d):
        cfg = self.cfg
        self._arm(OPEN_WIRE, d if d >= 0 else -d, cfg.ow_mv, cfg.ow_hyst_mv, d, -1, cfg.ow_ms)

    @micropython.native
    def _temps(self, i, temps):
        # Charge window only while charging, discharge window only while discharging; a sensor
        # reading None (open/short: the app's ntc fault) is skipped. Release needs the temperature
        # back inside the window by the hysteresis, whatever the current.
        self._have = self._minmax(temps) if temps is not None else 0
        self._dly[OT_CHG] = self._dly[OT_DSG] = self.cfg.temp_ms
        self._window(OT_CHG, self.cfg.chg_tmin_dc, self.cfg.chg_tmax_dc)
        self._window(OT_DSG, self.cfg.dsg_tmin_dc, self.cfg.dsg_tmax_dc)
        d = self.cfg.dir_ma
        if i is None or i <= d:
            self._on[OT_CHG] = 0
        if i is None or i >= -d:
            self._on[OT_DSG] = 0

    @micropython.native
    def _window(self, b, tmin, tmax):
        w = self._w
        if not self._have:
            self._on[b] = 0  # no reading: nothing to alarm on, free to release
            self._off[b] = 1
            self._val[b] = _NOVAL
            self._idx[b] = -1
            return
        self._on[b] = w[2] > tmax or w[0] < tmin
        self._off[b] = w[2] < tmax - self.cfg.temp_hyst_dc and w[0] > tmin + self.cfg.temp_hyst_dc
        k = 2 if tmax - w[2] <= w[0] - tmin else 0  # report the extreme nearer its limit
        self._val[b] = w[k]
        self._idx[b] = w[k + 1]

    @micropython.native
    def _current(self, i):
        if i is None:
            self._hold |= _OC_BITS
            return
        cfg = self.cfg
        s = self.i_sat
        d = 0 if s else cfg.oc_ms
        self._arm(OC_CHG, i, cfg.oc_chg_ma, cfg.oc_hyst_ma, i, -1, d)
        self._arm(OC_DSG, -i, cfg.oc_dsg_ma, cfg.oc_hyst_ma, i, -1, d)
        if s > 0:
            self._on[OC_CHG] = 1
        elif s < 0:
            self._on[OC_DSG] = 1
