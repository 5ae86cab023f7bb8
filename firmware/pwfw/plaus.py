# Per sample, after pwfw.pack has read the chips: the charge counted by the parts' own accumulators
# (Counter -> Pack.i_avg_ma, what the estimator integrates) and the plausibility faults (Plaus -> bits in
# Pack.fault). Integer-only and allocation-free (docs/hardware.md "Coulomb counting" and "Plausibility").
from pwfw.compat import MICROPYTHON, const, micropython, ticks_diff

if not MICROPYTHON:
    from pwfw.compat import ptr16

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
def cells_sum(cells, n: int) -> int:
    """The sum of cells[0:n] (array('h'); viper: one call instead of a native loop of generic subscripts)."""
    c = ptr16(cells)
    tot = 0
    k = 0
    while k < n:
        tot += ((c[k] & 0xFFFF) ^ 0x8000) - 0x8000  # int16 (ptr16 reads unsigned on MicroPython)
        k += 1
    return tot


@micropython.viper
def cells_min(cells, n: int) -> int:
    """The lowest of cells[0:n] (array('h')), 32767 for none."""
    c = ptr16(cells)
    lo = 32767
    k = 0
    while k < n:
        v = ((c[k] & 0xFFFF) ^ 0x8000) - 0x8000
        if v < lo:
            lo = v
        k += 1
    return lo


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
        raw = p.raw_i_ma if p.raw_i_ma is not None else 0
        if dt <= 0 or dt > 60000:  # first sample, or the loop was stopped: nothing to integrate
            p.i_avg_ma = p.i_ma
            self._t_acc = None
            return
        if p.ina is not None:
            q = self._ina(raw, dt)
            if afe_ok:
                self._bq_window()
        else:
            q = self._bq(raw, dt, afe_ok)
        q += self._rem
        i = q // dt
        self._rem = q - i * dt
        p.i_avg_ma = p.cfg.current_ma(i)

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
    def _bq(self, raw, dt, afe_ok):
        i = self._i_pred if self._i_pred is not None else raw
        q = i * dt
        self._pred += q
        if not (afe_ok and self.p.afe_ready and self._due()):
            return q
        t0 = self._t_acc
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


class Plaus:
    """The plausibility faults: one sensor against another (or against physics). Each sets its bit in
    Pack.fault while the disagreement lasts (App sends the `evt` on each change)."""

    def __init__(self, pack):
        self.p = pack
        self.n = pack.n_cells
        self._v_n = 0
        self._pk_n = 0
        self._t_n = 0
        self._st_raw = None
        self._st_n = 0
        self._st_lo = 0
        self._st_hi = 0
        self._t_at = pack.next_temp

    @micropython.native
    def check(self, now):
        # one native frame for the per-sample checks (a method call each cost ~30-60 us on an RP2040)
        p = self.p
        n = self.n
        tot = cells_sum(p.cells, n)
        st = p.stack_mv
        f = p.fault
        # the stack against the sum of the cells
        d = tot - st
        tol = n * _CELL_ERR_MV + st * _DIV_ERR_PM // 1000 + 2 * _USERV_MV
        k = self._v_n + 1 if (d > tol or -d > tol) else 0
        if k >= _N_PERSIST:
            k = _N_PERSIST
            f |= _F_V_STACK
        elif not k:
            f &= ~_F_V_STACK
        self._v_n = k
        # PACK and LD against the stack, only with both FETs on: otherwise they are the charger's or
        # the load's side
        if p.afe_fets != 3:
            self._pk_n = 0
            f &= ~_F_V_PACK
        else:
            i = p.i_ma if p.i_ma >= 0 else -p.i_ma
            tol = 2 * (st * _DIV_ERR_PM // 1000) + 2 * _USERV_MV + i * _PATH_MOHM // 1000
            a = p.afe.pack_mv - st
            d = p.afe.ld_mv - st
            bad = a > tol or -a > tol or d > tol or -d > tol
            k = self._pk_n + 1 if bad else 0
            if k >= _N_PERSIST:
                k = _N_PERSIST
                f |= _F_V_PACK
            elif not bad:
                f &= ~_F_V_PACK
            self._pk_n = k
        # the current's raw reading frozen while the cells move
        r = p.raw_i_ma
        if r is None or r != self._st_raw:
            self._st_raw = r
            self._st_n = 0
            self._st_lo = self._st_hi = tot
            f &= ~_F_I_STUCK
        else:
            self._st_n += 1
            if tot < self._st_lo:
                self._st_lo = tot
            if tot > self._st_hi:
                self._st_hi = tot
            if self._st_n >= _STUCK_N and self._st_hi - self._st_lo > n * _STUCK_MV:
                f |= _F_I_STUCK
        p.fault = f
        if p.next_temp != self._t_at:  # the temperatures were read this sample
            self._t_at = p.next_temp
            self._temps()
        if p.ina is not None and p.count.win_ms >= _WIN_MS:
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
