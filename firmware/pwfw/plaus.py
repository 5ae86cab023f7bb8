# Per sample, after pwfw.pack has read the chips: the charge counted by the parts' own accumulators
# (Counter -> Pack.i_avg_ma, what the estimator integrates) and the plausibility faults (Plaus -> bits in
# Pack.fault). Integer-only and allocation-free (docs/hardware.md "Coulomb counting" and "Plausibility").
from array import array

from pwfw.compat import MICROPYTHON, const, micropython, ticks_diff

if not MICROPYTHON:
    from pwfw.compat import ptr16, ptr32

_ACC_MS = const(1000)  # the BQ76952's accumulated charge is read once a second (a subcommand: ~1.5 ms of bus)
_WIN_MS = const(10000)  # INA228 vs BQ76952 charge compared over 10 s windows (both integrate continuously)

# Thresholds (docs/hardware.md "Plausibility faults" gives the data-sheet figures behind each):
_CELL_ERR_MV = const(10)  # BQ76952 cell voltage error, worst case per cell
_DIV_ERR_PM = const(10)  # stack / PACK / LD divider measurement, 1 % of the reading (per mille)
_USERV_MV = const(10)  # stack / PACK / LD resolution (userV)
_PATH_MOHM = const(5)  # FETs + shunt + wiring between the stack and PACK+: a drop this large is allowed
_X_PCT = const(3)  # INA228 vs BQ76952 coulomb counter: gain budget (CC Gain 1.2 % + shunt + INA228)
_X_OFF_MA = const(100)  # and offset budget (BQ76952 +-25 mA, INA228 2 mA on 500 uOhm, doubled, rounded up)
_STUCK_N = const(50)  # the current's raw reading exactly the same for 5 s...
_STUCK_MV = const(10)  # ...while the sum of the cells moved more than this per cell (a load step)
_T_SPREAD_DC = const(250)  # two sensors of one pack 25 °C apart (cell gradients stay < ~10 °C: see docs)
_N_PERSIST = const(10)  # samples (or temperature reads) a voltage/temperature disagreement must last

_F_V_STACK = const(256)  # pwfw.pack's bits (tests/t0/test_contract_names.py checks them)
_F_V_PACK = const(512)
_F_I_CROSS = const(1024)
_F_I_STUCK = const(2048)
_F_T_CROSS = const(4096)


@micropython.viper
def cells_ext(cells, n: int, top: int) -> int:
    """The lowest of cells[0:n] (array('h')), 32767 for none; top: the highest, 0 for none or below
    (pwfw.balance's top of charge: its bytecode loop was ~190 us on the RP2040, three times a second)."""
    c = ptr16(cells)
    x = 0 if top else 32767
    k = 0
    while k < n:
        v = ((c[k] & 0xFFFF) ^ 0x8000) - 0x8000
        if (v > x) if top else (v < x):
            x = v
        k += 1
    return x


class Counter:
    """Pack.i_avg_ma: the mean current over the last sample interval as the part's accumulator counted
    it (INA228 CHARGE every sample; BQ76952 DASTATUS6 once a second, the seconds in between predicted
    from the last second's mean and corrected at the next read), so that sum(i_avg_ma * dt) is the
    accumulator's charge exactly (the rounding remainder is carried). Resets and POR of the part never
    make a jump: that interval is counted from the instantaneous current instead."""

    def __init__(self, pack):
        self.p = pack
        self._rem = 0  # mA*ms not yet handed out (division by dt)
        self._owed = 0  # INA228: mA*ms counted from the current while CHARGE could not be read
        self._pred = 0  # BQ76952: mA*ms predicted since the last accumulator read
        self._i_pred = None  # the mean raw current of the last accumulator interval
        self._t_acc = None  # ticks of the last accumulator read
        self.acc_mas = 0  # BQ76952 charge in this window (for the INA228 cross-check), mA*s
        self.ina_mas = 0
        self._ina_since = 0  # INA228 charge since the last BQ76952 read: the windows share their ends
        self.win_ms = 0
        self.win_ok = False  # both were read over the whole window
        self.acc_fail = 0  # accumulator reads that failed (bus, checksum)

    @micropython.native
    def sample(self, dt, afe_ok):
        p = self.p
        raw = p.raw_i_ma
        if raw is None:
            raw = 0
        if dt <= 0 or dt > 60000:  # first sample, or the loop was stopped: nothing to integrate
            p.i_avg_ma = p.i_ma
            self._t_acc = None
            return
        if p.ina is not None:
            q = self._ina(raw, dt)
            if afe_ok:
                self._bq_window()
        else:
            # the BQ76952: the last second's mean current predicted, the part's count once a second
            i = self._i_pred
            q = (raw if i is None else i) * dt
            self._pred += q
            if afe_ok and p.afe_ready:
                t = self._t_acc
                if t is None or ticks_diff(p._now, t) >= _ACC_MS:
                    q = self._bq(q, raw, t)
        q += self._rem
        i = q // dt
        self._rem = q - i * dt
        c = p.cfg
        p.i_avg_ma = c.current_ma(i) if c.i_offset_ma or c.i_gain_ppm else i  # current_ma(i) is i then

    @micropython.native
    def _ina(self, raw, dt):
        try:
            d = self.p.ina.charge_delta_mas()
        except (OSError, ValueError):
            self._owed += raw * dt
            self.win_ok = False
            return raw * dt
        self._ina_since += d
        q = d * 1000 - self._owed
        self._owed = 0
        return q

    @micropython.native  # a try in a bytecode frame: it would go on the heap once a second
    def _read_acc(self, now):
        """The BQ76952's charge since the last read in mA*s, None without a baseline or on a failure."""
        self._t_acc = now
        try:
            return self.p.afe.read_acc_mas()
        except (OSError, ValueError):
            return self._acc_failed()

    def _acc_failed(self):
        self.acc_fail += 1
        self.p.afe.acc_reset()
        return None

    @micropython.native
    def _due(self):
        t = self._t_acc
        return t is None or ticks_diff(self.p._now, t) >= _ACC_MS

    @micropython.native
    def _bq(self, q, raw, t0):
        """Once a second (the accumulator read due): this interval's charge q, the prediction since
        the last read replaced by the part's count."""
        now = self.p._now
        acc = self._read_acc(now)
        if acc is None or t0 is None:  # a new baseline: what was predicted stands
            self._pred = 0
            self._i_pred = None
            return q
        q += acc * 1000 - self._pred  # the part's count replaces the prediction
        self._pred = 0
        el = ticks_diff(now, t0)
        self._i_pred = acc * 1000 // el if el > 0 else raw
        return q

    @micropython.native
    def _bq_window(self):
        """INA228 boards: the AFE's accumulator read once a second beside CHARGE, for Plaus's check
        (both over the same interval: from one accumulator read to the next)."""
        if not (self.p.afe_ready and self._due()):
            return
        t0 = self._t_acc
        acc = self._read_acc(self.p._now)
        ina = self._ina_since
        self._ina_since = 0
        if acc is None or t0 is None:
            self.win_ok = False
            return
        self.acc_mas += acc
        self.ina_mas += ina
        self.win_ms += ticks_diff(self.p._now, t0)


# Plaus._s: the per-sample checks' state in one array('i') (viper reads it as machine words; every
# word is non-negative: a 64-bit port reads them zero-extended, so signed values are stored + _BIAS)
_S_V = const(0)  # samples in a row the stack has disagreed with the sum of the cells
_S_PK = const(1)  # the same for PACK / LD against the stack
_S_RAW = const(2)  # the current's raw reading + _BIAS when last seen, 0: none (None)
_S_N = const(3)  # samples that raw reading has stayed the same
_S_LO = const(4)  # the lowest and highest sum of the cells meanwhile, + _BIAS
_S_HI = const(5)
_S_TAT = const(6)  # Pack.next_temp when the temperatures were last compared
_S_SIZE = const(7)
_BIAS = const(0x10000000)


class Plaus:
    """The plausibility faults: one sensor against another (or against physics). Each sets its bit in
    Pack.fault while the disagreement lasts (App sends the `evt` on each change)."""

    def __init__(self, pack):
        self.p = pack
        self.n = pack.n_cells
        self._t_n = 0
        self._s = array("i", [0] * _S_SIZE)
        self._s[_S_TAT] = pack.next_temp

    @micropython.viper
    def check(self, now, nil):  # nil: None (viper compares objects with an object, not the literal)
        # one viper frame for the per-sample checks, its state in machine words (a native frame of
        # generic int operations and attributes cost ~125 us on the RP2040)
        p = self.p
        s = ptr32(self._s)
        n = int(self.n)
        c = ptr16(p.cells)
        tot = 0
        k = 0
        while k < n:
            tot += ((c[k] & 0xFFFF) ^ 0x8000) - 0x8000  # int16 (ptr16 reads unsigned on MicroPython)
            k += 1
        st = int(p.stack_mv)
        f = int(p.fault)
        # the stack against the sum of the cells
        d = tot - st
        tol = n * _CELL_ERR_MV + st * _DIV_ERR_PM // 1000 + 2 * _USERV_MV
        k = int(s[_S_V]) + 1 if (d > tol or 0 - d > tol) else 0
        if k >= _N_PERSIST:
            k = _N_PERSIST
            f |= _F_V_STACK
        elif k == 0:
            f &= ~_F_V_STACK
        s[_S_V] = k
        # PACK and LD against the stack, only with both FETs on: otherwise they are the charger's or
        # the load's side
        if int(p.afe_fets) != 3:
            s[_S_PK] = 0
            f &= ~_F_V_PACK
        else:
            i = int(p.i_ma)
            if i < 0:
                i = 0 - i
            tol = 2 * (st * _DIV_ERR_PM // 1000) + 2 * _USERV_MV + i * _PATH_MOHM // 1000
            afe = p.afe
            a = int(afe.pack_mv) - st
            d = int(afe.ld_mv) - st
            bad = a > tol or 0 - a > tol or d > tol or 0 - d > tol
            k = int(s[_S_PK]) + 1 if bad else 0
            if k >= _N_PERSIST:
                k = _N_PERSIST
                f |= _F_V_PACK
            elif k == 0:  # not bad
                f &= ~_F_V_PACK
            s[_S_PK] = k
        # the current's raw reading frozen while the cells move
        r = p.raw_i_ma
        rv = 0 if r is nil else int(r) + _BIAS
        tb = tot + _BIAS
        if rv == 0 or rv != int(s[_S_RAW]):
            s[_S_RAW] = rv
            s[_S_N] = 0
            s[_S_LO] = tb
            s[_S_HI] = tb
            f &= ~_F_I_STUCK
        else:
            k = int(s[_S_N]) + 1
            s[_S_N] = k
            if tb < int(s[_S_LO]):
                s[_S_LO] = tb
            if tb > int(s[_S_HI]):
                s[_S_HI] = tb
            if k >= _STUCK_N and int(s[_S_HI]) - int(s[_S_LO]) > n * _STUCK_MV:
                f |= _F_I_STUCK
        p.fault = f
        t = int(p.next_temp)
        if t != int(s[_S_TAT]):  # the temperatures were read this sample
            s[_S_TAT] = t
            self._temps()
        if p.ina is not nil and int(p.count.win_ms) >= _WIN_MS:
            self._cross()

    def _set(self, bit, on):
        if on:
            self.p.fault |= bit
        else:
            self.p.fault &= ~bit

    def _temps(self):
        lo = 0x7FFF
        hi = -0x7FFF
        for t in self.p.temps:
            if t is not None:
                if t < lo:
                    lo = t
                if t > hi:
                    hi = t
        bad = hi - lo > _T_SPREAD_DC
        self._t_n = self._t_n + 1 if bad else 0
        if self._t_n >= _N_PERSIST:
            self._t_n = _N_PERSIST
            self.p.fault |= _F_T_CROSS
        elif not bad:
            self.p.fault &= ~_F_T_CROSS

    def _cross(self):
        c = self.p.count
        if c.win_ok:
            a = c.ina_mas
            b = c.acc_mas
            m = a if a >= 0 else -a
            mb = b if b >= 0 else -b
            if mb > m:
                m = mb
            tol = m * _X_PCT // 100 + _X_OFF_MA * c.win_ms // 1000
            self._set(_F_I_CROSS, a - b > tol or b - a > tol)
        c.win_ms = 0
        c.ina_mas = 0
        c.acc_mas = 0
        c.win_ok = True
