# The simulated BQ76952's protection state machine (TRM SLUUBY2B 5.2) in the chip's own time base,
# and SLEEP: a mixin of hil/chips/bq76952_fsm.py, in its own module so each compiles within a
# board-sized heap (the unix port compiles hil/ from source).


from hil.mpcompat import micropython, ptr8


@micropython.viper
def _hilo(reg, vm: int) -> int:
    """(highest + 32768) << 16 | (lowest + 32768) of the cell registers (i16 at 0x14..0x33) the
    Vcell Mode bitmask selects (0 = all 16)."""
    r = ptr8(reg)
    hi = -32768
    lo = 32767
    k = 0
    while k < 16:
        if vm == 0 or (vm >> k) & 1:
            v = r[0x14 + 2 * k] | (r[0x15 + 2 * k] << 8)
            if v & 0x8000:
                v -= 0x10000
            if v > hi:
                hi = v
            if v < lo:
                lo = v
        k += 1
    return ((hi + 32768) << 16) | (lo + 32768)


class Bq76952Prot:
    # --- the protection state machine, in the chip's own time base ----------------------------
    @micropython.native
    def advance(self, dt_us, profile=None):
        """Run the part for dt_us of its own time. `profile`: [(duration_us, true mA), ...] for the
        current inside the step (default: the set_truth current for all of it). Over-current and
        short circuit are timed inside each piece, so an SCD trip inside a 100 ms step lands at its
        us delay; a FET that opens cuts the rest of the step's current in that direction.
        Returns the us into the step when a FET last opened (-1: none).

        The virtual board runs this every step, inside MicroPython: a quiet step (no protection
        alerted or latched, not in CONFIG_UPDATE, the current, the cells and the temperatures inside
        every enabled threshold) is decided here with integers and no allocation; any other goes to
        _advance, which does every check. Both leave the same state (the T0 chip tests run both)."""
        if self._shut or self.off or self.cfg_update or self.alert_a | self.status_a | self.alert_b | self.status_b:
            return self._advance(dt_us, profile)
        # over-current and short circuit: each piece's shunt voltage inside every enabled threshold
        g = self._gain20
        r = self._r
        lo = self._ocq_lo
        hi = self._ocq_hi
        chg = self.chg_fet
        dsg = self.dsg_fet
        q = 0
        if profile is None:
            i = self.i_ma
            if (i > 0 and not chg) or (i < 0 and not dsg):
                i = 0  # path_passes
            uv = i * r // 1000
            if uv <= lo or uv >= hi:
                return self._advance(dt_us, profile)
            a = i if i >= 0 else -i
            m = (a * g + 524288) >> 20  # measured_ma: CC Gain applied
            q = (m if i >= 0 else -m) * dt_us
            n = dt_us
        else:
            n = 0
            for dur, i in profile:
                if (i > 0 and not chg) or (i < 0 and not dsg):
                    i = 0
                uv = i * r // 1000
                if uv <= lo or uv >= hi:
                    return self._advance(dt_us, profile)
                a = i if i >= 0 else -i
                m = (a * g + 524288) >> 20
                q += (m if i >= 0 else -m) * dur
                n += dur
        # cell over/under-voltage
        x = _hilo(self.reg, self._vm)
        if (x >> 16) - 32768 >= self._covq or (x & 0xFFFF) - 32768 <= self._cuvq:
            return self._advance(dt_us, profile)
        # temperatures: cell thermistors (TS Config 0x07) and FET ones (0x0F)
        ts = self._ts
        nt = len(ts)
        cmax = -9999
        cmin = 9999
        for k in self._tsc:
            if k < nt:
                v = ts[k]
                if v is not None:
                    if v >= self._tchi or v <= self._tclo:
                        return self._advance(dt_us, profile)
                    if v > cmax:
                        cmax = v
                    if v < cmin:
                        cmin = v
        for k in self._tsf:
            if k < nt:
                v = ts[k]
                if v is not None and v >= self._tfhi:
                    return self._advance(dt_us, profile)
        # quiet: only the accumulators, the clock, balancing's temperature limits and SLEEP move
        self.q += q
        self.q_t += n
        self.t_us += dt_us
        if self.cb_cells:
            self._cb_temps(cmin, cmax)
        if self.sleeping or (self._sleep_ok and self.sleep_cmd):
            self._sleep_step(dt_us)
        if self._fet_key() != self._fkey:
            self._fets()  # SLEEP changed, or the current crossed Body Diode Threshold
        return -1

    @micropython.native
    def _advance(self, dt_us, profile):
        """advance() with every check: over-current timers, trips, recoveries, SHUTDOWN."""
        if self._shut:
            self._shut = False
            self.off = True
            self._fets()  # powered down: the FET drivers stop with it
        if self.off:
            return -1
        key = self._fet_key()
        if profile is None:
            profile = self._one
            profile[0][0] = dt_us
            profile[0][1] = self.i_ma
        cut = -1
        t = 0
        ena = self.en[0]
        r = self._r
        lo, hi = self._oc_quiet
        for dur, i in profile:
            i = self.passes(i)
            uv = i * r // 1000  # shunt voltage, + charge
            # quiet: inside every enabled threshold with no OC condition held (no alert, so no timer)
            if lo < uv < hi and not self.alert_a & 0xF0:
                pass
            elif not self.cfg_update and ena & 0xF0:
                for name, bit, th, delay in self._oc:
                    if not ena & bit:
                        continue
                    hit = uv >= th if th > 0 else uv <= th
                    if hit and not self.status_a & bit:
                        self.alert_a |= bit
                        held = self._tmr.get(name, 0)
                        if held + dur >= delay:
                            at = t + (delay - held if delay > held else 0)
                            self._trip(name, bit, 0, at)
                            before = self.chg_fet, self.dsg_fet
                            self._fets()
                            if before != (self.chg_fet, self.dsg_fet):
                                cut = at
                            # the part of the piece after the trip carries what still passes
                            self.q += self.measured_ma(i) * (at - t)
                            self.q_t += at - t
                            dur -= at - t
                            t = at
                            i = self.passes(i)
                            uv = i * r // 1000
                        else:
                            self._tmr[name] = held + dur
                    elif not hit:
                        self._tmr[name] = 0
                        self.alert_a &= ~bit
            self.q += self.measured_ma(i) * dur
            self.q_t += dur
            t += dur
        self.t_us += dt_us
        self._slow(dt_us)
        self._sleep_step(dt_us)
        if cut >= 0 or self._fet_key() != key or key != self._fkey:
            self._fets()  # else every input of the FET state and the status registers is as it was
        return cut

    def _trip(self, name, bit, reg, at):
        if reg == 0:
            self.status_a |= bit
        else:
            self.status_b |= bit
        self._tmr[name] = 0
        self._tmr["-" + name] = 0
        self.trips.append((self.t_us + at, name))

    def _hold(self, name, cond, dt, delay):
        """Time `name`'s condition; True once it has held for delay."""
        if not cond:
            self._tmr[name] = 0
            return False
        v = self._tmr.get(name, 0) + dt
        self._tmr[name] = v
        return v >= delay

    @micropython.native
    def _slow(self, dt):
        """Cell-voltage, temperature and recovery checks (once per step: their delays are ms-s)."""
        if self.cfg_update:
            return
        x = _hilo(self.reg, self._vm)
        hi = (x >> 16) - 32768
        lo = (x & 0xFFFF) - 32768
        ena, enb = self.en[0], self.en[1]
        # quiet (not hit, nothing held or latched: alert and timer go together) skips each check
        held = self.alert_a | self.status_a
        th, hy, dl = self._cov
        if hi >= th or held & 0x08:
            self._cell(ena & 0x08, "cov", 0x08, hi >= th, hi < th - hy, dt, dl)
        th, hy, dl = self._cuv
        if lo <= th or held & 0x04:
            self._cell(ena & 0x04, "cuv", 0x04, lo <= th, lo > th + hy, dt, dl)
        # current recoveries (TRM 5.2: OCC when current <= OCC Recovery Threshold, OCD when current >=
        # OCD Recovery Threshold, each for Recovery Time; SCD after SCD Recovery Time)
        i = self.measured_ma(self.passes(self.i_ma)) if self.status_a & 0xF0 else 0
        for name, bit, _, _ in self._oc if i or self.status_a & 0xF0 else ():
            if self.status_a & bit:
                if name == "scd":
                    ok = True
                    need = self._scd_recov_us
                elif name == "occ":
                    ok = i <= self._occ_rec
                    need = self._recov_us
                else:
                    ok = i >= self._ocd_rec
                    need = self._recov_us
                if self._hold("-" + name, ok, dt, need):
                    self.status_a &= ~bit
        # temperatures: cell thermistors are the TS pins configured 0x07, FET ones 0x0F
        ts = self._ts
        cmax = -9999
        cmin = 9999
        fmax = -9999
        for k in range(3):
            if k >= len(ts) or ts[k] is None:
                continue
            c = self._ts_cfg[k]
            if c == 0x07:
                cmax = ts[k] if ts[k] > cmax else cmax
                cmin = ts[k] if ts[k] < cmin else cmin
            elif c == 0x0F:
                fmax = ts[k] if ts[k] > fmax else fmax
        for name, bit, th, rec, delay, over in self._temps:
            if not enb & bit:
                continue
            x = fmax if name == "otf" else cmax if over else cmin
            if x in (-9999, 9999):
                continue
            hit = x >= th if over else x <= th
            if not hit and not (self.alert_b | self.status_b) & bit:
                continue  # quiet
            if hit:
                self.alert_b |= bit
            else:
                self.alert_b &= ~bit
            if self.status_b & bit:
                ok = x <= rec if over else x >= rec
                if self._hold("-" + name, ok, dt, self._recov_us):
                    self.status_b &= ~bit
            elif self._hold(name, hit, dt, delay):
                self._trip(name, bit, 1, 0)
        self._cb_temps(cmin, cmax)

    def _cell(self, on, name, bit, hit, ok, dt, delay):
        if not on:
            return
        if hit:
            self.alert_a |= bit
        else:
            self.alert_a &= ~bit
        if self.status_a & bit:
            if self._hold("-" + name, ok, dt, self._recov_us):
                self.status_a &= ~bit
        elif self._hold(name, hit, dt, delay):
            self._trip(name, bit, 0, 0)

    def _sleep_step(self, dt):
        """SLEEP (TRM 7.x): allowed by Power Config[SLEEP] and SLEEP_ENABLE, entered when |current|
        is below Sleep Current; left when it passes the wake comparator (or Sleep Current again).
        In SLEEP the voltages are measured only every Voltage Time (set_truth keeps the last)."""
        i = self.measured_ma(self.passes(self.i_ma))
        a = i if i >= 0 else -i
        if self.sleeping:
            if a >= self._wake_ma or a >= self._sleep_ma or not (self._sleep_ok and self.sleep_cmd):
                self.sleeping = False
            else:
                self._sleep_t += dt
        elif self._sleep_ok and self.sleep_cmd and a < self._sleep_ma and not self.cfg_update:
            self.sleeping = True
            self._sleep_t = 0

    @property
    def hold_voltages(self):
        """True while SLEEP skips this measurement (one every Voltage Time)."""
        if not self.sleeping:
            return False
        if self._sleep_t >= self._vtime_us:
            self._sleep_t = 0
            return False
        return True
