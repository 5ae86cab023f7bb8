# Protections: each alarm has a threshold, a set delay, a release hysteresis and release delay, and
# over-current / open-wire latch until clear(). Bit numbers and names are docs/protocol.md's.
#
# Allocation-free per check(): all state lives in one pre-allocated array('i') (layout below), judged
# by one viper function per sample (machine-word compares; on the RP2040 a native method call costs
# ~10 us, an attribute load ~1.8 and a generic subscript ~2.7, so the per-bit methods it replaces
# cost ~1 ms per sample).
from array import array

from pwfw.compat import MICROPYTHON, const, micropython

if not MICROPYTHON:
    from pwfw.compat import ptr16, ptr32

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

# Everything but imbalance and cell_uv opens the relay: imbalance is a maintenance warning, not a hazard;
# an under-voltage is stopped by the AFE's DSG FET alone, so a charger can still recharge the pack
# (series FETs: the charge flows through DSG's body diode; docs/hardware.md, "Deep under-voltage").
_RELAY_MASK = const(0xBD)
# The AFE's FETs per direction: charging stops on cell_ov, ot_chg, oc_chg, open_wire; discharging on
# cell_uv, ot_dsg, oc_dsg, open_wire (the relay, one switch, opens on any _RELAY_MASK alarm).
_CHG_STOP = const(0x95)
_DSG_STOP = const(0xAA)
_CELL_BITS = const(0xC3)  # OV, UV, imbalance, open wire: held while cell readings are implausible
_V_BITS = const(0x43)  # OV, UV, imbalance: not judged on readings that cannot be real
_OC_BITS = const(0x30)
_OW_BIT = const(0x80)
_N = const(8)
EV_N = const(16)  # a power of two (the ring index is masked)
_NOVAL = const(-0x40000000)  # "no value" in the event ring (a small int on every port)
# Signed inputs are stored biased: viper loads 32-bit words zero-extended on a 64-bit port (unix),
# so a word read back for a compare must be non-negative; 0 stands for "none" (a missing stack/current)
_BIAS = const(0x10000000)
_PERIOD_MASK = const(0x3FFFFFFF)  # ticks_ms wraps at 2**30 (ticks_diff below, as pwfw.compat's)
_HALF = const(0x20000000)

# The state array: per alarm bit (8 each) the condition to set, to release, the value and index its
# event reports, its set delay, whether a set/release timer runs and when it started; then scratch and
# scalars; the event ring; the limits, copied from cfg when it changes (a `set` applies at once).
_ON = const(0)
_OFF = const(8)
_VAL = const(16)
_IDX = const(24)
_DLY = const(32)
_PEND = const(40)
_T = const(48)
_NOW = const(56)
_ISAT = const(57)  # Protect.i_sat + 1 (i_sat: +1 / -1, the current sensor is at full scale that way)
_STK = const(58)  # the stack reading + _BIAS, 0: none
_I = const(59)  # the current + _BIAS, 0: none
_BAD = const(60)  # cell/stack readings implausible since _BAD_T
_BAD_T = const(61)
_ALARM = const(62)
_HEAD = const(63)  # event ring: oldest entry, entries waiting, entries overwritten (oldest dropped)
_CNT = const(64)
_LOST = const(65)
_EB = const(66)  # ring: bit, on, value, index (EV_N each)
_EO = const(82)
_EV = const(98)
_EI = const(114)
_L = const(130)  # the limits, in _lims' order
_SIZE = const(158)


@micropython.viper
def _lims(s, c):
    """The limits from cfg c into s[_L:] (after each change of cfg: it applies at the next sample)."""
    p = ptr32(s)
    p[130] = int(c.cell_ov_mv)
    p[131] = int(c.cell_ov_hyst_mv)
    p[132] = int(c.cell_ov_ms)
    p[133] = int(c.cell_uv_mv)
    p[134] = int(c.cell_uv_hyst_mv)
    p[135] = int(c.cell_uv_ms)
    p[136] = int(c.imbal_mv)
    p[137] = int(c.imbal_hyst_mv)
    p[138] = int(c.imbal_ms)
    p[139] = int(c.ow_mv)
    p[140] = int(c.ow_hyst_mv)
    p[141] = int(c.ow_ms)
    p[142] = int(c.spike_lo_mv)
    p[143] = int(c.spike_hi_mv)
    p[144] = int(c.spike_ms)
    p[145] = int(c.temp_ms)
    p[146] = int(c.chg_tmin_dc) + _BIAS
    p[147] = int(c.chg_tmax_dc) + _BIAS
    p[148] = int(c.dsg_tmin_dc) + _BIAS
    p[149] = int(c.dsg_tmax_dc) + _BIAS
    p[150] = int(c.temp_hyst_dc)
    p[151] = int(c.dir_ma)
    p[152] = int(c.oc_chg_ma)
    p[153] = int(c.oc_dsg_ma)
    p[154] = int(c.oc_hyst_ma)
    p[155] = int(c.oc_ms)
    p[156] = int(c.release_ms)
    p[157] = (_OC_BITS if int(c.oc_latch) else 0) | (_OW_BIT if int(c.ow_latch) else 0)


@micropython.viper
def _judge(s, cells, temps, nil) -> int:
    """One sample: the conditions of every alarm from the readings (cells: array('h'); temps: a list,
    None entries skipped, or None), then each bit's delay/release timer; events into the ring.
    Returns the new alarm mask."""
    p = ptr32(s)
    now = p[_NOW]
    hold = 0
    # --- cells: min/argmin/max/argmax/sum, plausibility, OV/UV/imbalance, open wire
    n = int(len(cells))
    if n:
        c = ptr16(cells)
        lo = ((c[0] & 0xFFFF) ^ 0x8000) - 0x8000  # int16 (ptr16 reads unsigned on MicroPython)
        hi = lo
        ilo = 0
        ihi = 0
        tot = lo
        k = 1
        while k < n:
            v = ((c[k] & 0xFFFF) ^ 0x8000) - 0x8000
            if v < lo:
                lo = v
                ilo = k
            if v > hi:
                hi = v
                ihi = k
            tot += v
            k += 1
        st = p[_STK] - _BIAS  # -_BIAS: none
        slo = p[142]
        shi = p[143]
        # A reading no cell can produce (0 V, > 5 V, a stack out of range) is a glitch until it has
        # lasted spike_ms; meanwhile the cell-based alarms keep their timers (neither set nor reset).
        if lo >= slo and hi <= shi and (st == -_BIAS or (n * slo <= st and st <= n * shi)):
            p[_BAD] = 0
            x = hi  # OV: alarm while x > lim, release once x < lim - hyst
            p[_ON + 0] = 1 if x > p[130] else 0
            p[_OFF + 0] = 1 if x < p[130] - p[131] else 0
            p[_VAL + 0] = hi
            p[_IDX + 0] = ihi
            p[_DLY + 0] = p[132]
            x = 0 - lo  # UV: the same on negated values
            p[_ON + 1] = 1 if x > 0 - p[133] else 0
            p[_OFF + 1] = 1 if x < 0 - p[133] - p[134] else 0
            p[_VAL + 1] = lo
            p[_IDX + 1] = ilo
            p[_DLY + 1] = p[135]
            x = hi - lo  # imbalance; idx: the weakest cell
            p[_ON + 6] = 1 if x > p[136] else 0
            p[_OFF + 6] = 1 if x < p[136] - p[137] else 0
            p[_VAL + 6] = x
            p[_IDX + 6] = ilo
            p[_DLY + 6] = p[138]
            if st == -_BIAS:
                hold |= _OW_BIT
            else:
                d = tot - st
                x = d if d >= 0 else 0 - d
                p[_ON + 7] = 1 if x > p[139] else 0
                p[_OFF + 7] = 1 if x < p[139] - p[140] else 0
                p[_VAL + 7] = d
                p[_IDX + 7] = -1
                p[_DLY + 7] = p[141]
        else:
            if not p[_BAD]:
                p[_BAD] = 1
                p[_BAD_T] = now
            if ((now - p[_BAD_T] + _HALF) & _PERIOD_MASK) - _HALF < p[144]:
                hold |= _CELL_BITS
            else:
                # Persistent: no cell reads 0 V or twice its voltage. An open sense wire does exactly
                # that (its cell reads ~0, the neighbour the sum of both, the stack still adds up): a
                # measurement fault, reported as open_wire (relay open), never as an over- or
                # under-voltage of a healthy cell.
                hold |= _V_BITS
                if lo < slo:
                    p[_VAL + 7] = lo
                    p[_IDX + 7] = ilo
                elif hi > shi:
                    p[_VAL + 7] = hi
                    p[_IDX + 7] = ihi
                else:
                    p[_VAL + 7] = st
                    p[_IDX + 7] = -1
                p[_DLY + 7] = p[141]
                p[_ON + 7] = 1
                p[_OFF + 7] = 0
    else:
        hold |= _CELL_BITS
    # --- temperatures: charge window only while charging, discharge window only while discharging; a
    # sensor reading None (open/short: the app's ntc fault) is skipped. Release needs the temperature
    # back inside the window by the hysteresis, whatever the current.
    have = 0
    lo = 0
    hi = 0
    ilo = 0
    ihi = 0
    if temps is not nil:
        m = int(len(temps))
        k = 0
        while k < m:
            o = temps[k]
            if o is not nil:
                v = int(o)
                if not have or v < lo:
                    lo = v
                    ilo = k
                if not have or v > hi:
                    hi = v
                    ihi = k
                have += 1
            k += 1
    p[_DLY + 2] = p[145]
    p[_DLY + 3] = p[145]
    th = p[150]
    b = 2
    while b < 4:
        tmin = (p[146] if b == 2 else p[148]) - _BIAS
        tmax = (p[147] if b == 2 else p[149]) - _BIAS
        if not have:
            p[_ON + b] = 0  # no reading: nothing to alarm on, free to release
            p[_OFF + b] = 1
            p[_VAL + b] = _NOVAL
            p[_IDX + b] = -1
        else:
            p[_ON + b] = 1 if (hi > tmax or lo < tmin) else 0
            p[_OFF + b] = 1 if (hi < tmax - th and lo > tmin + th) else 0
            if tmax - hi <= lo - tmin:  # report the extreme nearer its limit
                p[_VAL + b] = hi
                p[_IDX + b] = ihi
            else:
                p[_VAL + b] = lo
                p[_IDX + b] = ilo
        b += 1
    i = p[_I] - _BIAS  # -_BIAS: none
    d = p[151]
    if i == -_BIAS or i <= d:
        p[_ON + 2] = 0
    if i == -_BIAS or i >= 0 - d:
        p[_ON + 3] = 0
    # --- current
    if i == -_BIAS:
        hold |= _OC_BITS
    else:
        sat = p[_ISAT] - 1
        d = 0 if sat else p[155]
        h = p[154]
        x = p[152]
        p[_ON + 4] = 1 if i > x else 0
        p[_OFF + 4] = 1 if i < x - h else 0
        x = p[153]
        p[_ON + 5] = 1 if 0 - i > x else 0
        p[_OFF + 5] = 1 if 0 - i < x - h else 0
        p[_VAL + 4] = i
        p[_VAL + 5] = i
        p[_IDX + 4] = -1
        p[_IDX + 5] = -1
        p[_DLY + 4] = d
        p[_DLY + 5] = d
        if sat > 0:
            p[_ON + 4] = 1
        elif sat < 0:
            p[_ON + 5] = 1
    # --- each bit's timers
    alarm = p[_ALARM]
    latch = p[157]
    b = 0
    while b < _N:
        m = 1 << b
        if hold & m:
            b += 1
            continue
        on = 0
        if alarm & m:
            if (latch & m) or not p[_OFF + b]:
                p[_PEND + b] = 0
            else:
                if not p[_PEND + b]:
                    p[_PEND + b] = 1
                    p[_T + b] = now
                if ((now - p[_T + b] + _HALF) & _PERIOD_MASK) - _HALF >= p[156]:
                    alarm ^= m  # the bit is set: clears it
                    p[_PEND + b] = 0
                    on = 2  # a release event
        elif p[_ON + b]:
            if not p[_PEND + b]:
                p[_PEND + b] = 1
                p[_T + b] = now
            if ((now - p[_T + b] + _HALF) & _PERIOD_MASK) - _HALF >= p[_DLY + b]:
                alarm |= m
                p[_PEND + b] = 0
                on = 1
        else:
            p[_PEND + b] = 0  # the common case: no alarm, no condition
        if on:
            _push(s, b, on & 1, b)
        b += 1
    p[_ALARM] = alarm
    return alarm


@micropython.viper
def _push(s, b: int, on: int, src: int):
    """An event for bit b into the ring (value and index: those of bit src; src -1: none)."""
    p = ptr32(s)
    cnt = p[_CNT]
    if cnt == EV_N:
        k = p[_HEAD]
        p[_HEAD] = (k + 1) & (EV_N - 1)
        p[_LOST] += 1
    else:
        k = (p[_HEAD] + cnt) & (EV_N - 1)
        p[_CNT] = cnt + 1
    p[_EB + k] = b
    p[_EO + k] = on
    if src >= 0:
        p[_EV + k] = p[_VAL + src]
        p[_EI + k] = p[_IDX + src]
    else:
        p[_EV + k] = _NOVAL
        p[_EI + k] = -1


class Protect:
    def __init__(self, cfg):
        self.cfg = cfg
        self.alarm = 0
        self._s = array("i", bytes(4 * _SIZE))
        s = self._s
        # +1 / -1: the current sensor is at its full scale in that direction (set by App each sample):
        # the true current is at least that, so over-current is raised without waiting for oc_ms
        self.i_sat = 0
        self._gen = -1  # cfg.gen when the limits were last copied

    @property
    def ev_count(self):
        """Events waiting in the ring."""
        return self._s[_CNT]

    @property
    def ev_lost(self):
        """Events overwritten because the ring was full (the oldest are dropped)."""
        return self._s[_LOST]

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
        s = self._s
        g = self.cfg.gen
        if g != self._gen:  # a change (set, load) applies at this sample
            self._gen = g
            _lims(s, self.cfg)
        s[_NOW] = now_ms
        s[_ISAT] = self.i_sat + 1
        s[_STK] = 0 if stack_mv is None else stack_mv + _BIAS
        s[_I] = 0 if i_ma is None else i_ma + _BIAS
        old = s[_ALARM] = self.alarm
        a = self.alarm = _judge(s, cells_mv, temps_dc, None)
        return a ^ old

    def clear(self):
        """Clear latched alarms (over-current, open wire); returns the mask cleared. If the condition
        is still there the alarm sets again after its delay."""
        s = self._s
        m = self.alarm & (_OC_BITS | _OW_BIT)
        for b in range(_N):
            if (m >> b) & 1:
                self.alarm &= ~(1 << b)
                s[_PEND + b] = 0
                _push(s, b, 0, -1)
        return m

    @micropython.native
    def pop_event(self):
        """Oldest event as (bit, on, val, idx) — val/idx None when not applicable — or None."""
        s = self._s
        if not s[_CNT]:
            return None
        k = s[_HEAD]
        s[_HEAD] = (k + 1) & (EV_N - 1)
        s[_CNT] -= 1
        v = s[_EV + k]
        i = s[_EI + k]
        return (s[_EB + k], s[_EO + k], None if v == _NOVAL else v, None if i < 0 else i)
