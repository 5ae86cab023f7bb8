# Cell balancing: the policy that drives the BQ76952's balancing FETs through CB_ACTIVE_CELLS
# (host-controlled; docs/hardware.md "Cell balancing" says why not the part's autonomous mode).
# Top balancing: above bal_start_mv, when max-min reaches bal_start_dmv, the highest cells bleed
# until max-min is down to bal_stop_dmv; a cell is bled only while it sits above the lowest cell
# by more than the stop delta, so none is ever taken below the lowest. Charge and rest only unless
# bal_dsg. Stops when a board/cell thermistor passes bal_tmax_dc or the AFE's die bal_die_dc.
# Decided every bal_s seconds with the FETs off for the one sample the decision reads (bounded
# duty: the balancing current's drop in the sense path never reaches a reading the policy uses).
# Runs once per bal_s, never per sample: App checks `next_ms` itself.
from array import array

from pwfw.compat import const, ticks_add, ticks_diff

OFF = 0
AUTO = 1
MANUAL = 2
_MAS_MAH = const(3600)


class Balancer:
    # Small frames and while loops only: a bytecode frame past ~11 slots is heap-allocated on
    # MicroPython, and the loop must allocate nothing (tests/t1/test_app_mp.py). The rarely used
    # parts (the command, persistence) are in pwfw.balance_cmd, loaded when needed.
    def __init__(self, cfg, n_cells, now=0):
        self.cfg = cfg
        self.n = n_cells
        self.mode = AUTO
        self.mask = 0  # cells bleeding now (bit k = pack cell k+1): `bal` in `rep`
        self.want = 0  # the manual mask (`balance cells`)
        self.until_ms = 0
        self.prev_mode = AUTO
        self.active = False  # auto: between start and stop delta (hysteresis)
        self.paused = False  # FETs off for this decision's sample
        self.next_ms = now
        self.last_ms = now
        self.why = "idle"  # the last decision's reason (`balance` replies it)
        self.bal_s = array("i", [0] * n_cells)  # seconds each cell has been bled
        self.bled_mah = array("i", [0] * n_cells)  # charge bled per cell (mAh) and the rest in mA.s
        self._rem_mas = array("i", [0] * n_cells)
        self.errors = 0  # AFE writes that failed (the next decision tries again)
        self.die_dc = None
        self._lo = 0
        self._hi = 0

    # --- the decision (every bal_s) ------------------------------------------------------------
    def run(self, now, pack, est):
        """One decision: count what the last mask bled, then pause or choose the next mask."""
        self._count(now, pack.cells, est)
        if self.mask and not self.paused:  # FETs off for one sample: decide on a clean reading
            self._write(pack, 0)
            self.paused = True
            self.next_ms = ticks_add(now, self.cfg.sample_ms)
            return
        self.paused = False
        self.next_ms = ticks_add(now, self.cfg.bal_s * 1000)
        try:
            die = pack.afe.read_int_dk() - 2732  # the AFE's die: its balancing FETs heat it
        except (OSError, ValueError):
            die = None
        self.die_dc = die
        self._write(pack, self.choose(now, pack.cells, pack.i_ma, pack.temps, die))

    def _count(self, now, cells, est):
        dt = ticks_diff(now, self.last_ms)
        self.last_ms = now
        if not self.mask or dt <= 0:
            return
        k = 0
        while k < self.n:
            if self.mask >> k & 1:
                self._bleed(k, cells[k], dt, est)
            k += 1

    def _bleed(self, k, v, dt, est):
        self.bal_s[k] += (dt + 500) // 1000
        mas = v * dt // (self.cfg.bal_r_ohm * 1000)  # I = V / R (mA), for dt ms
        if est is not None:
            est.bled(k, mas)
        q = self._rem_mas[k] + mas
        self.bled_mah[k] += q // _MAS_MAH
        self._rem_mas[k] = q % _MAS_MAH

    def _write(self, pack, mask):
        if not mask and not self.mask and not self.paused:
            return  # a non-zero mask is written every decision: a part that reset has forgotten it
        try:
            pack.afe.cb_write(pack.afe.input_mask(mask))
            self.mask = mask
        except (OSError, ValueError):
            self.errors += 1
            self.mask = 0  # not known to be on: count nothing

    def choose(self, now, cells, i_ma, temps, die_dc):
        """The mask for the next bal_s seconds, and self.why."""
        if self.mode == OFF:
            self.why = "off"
            return 0
        if self._hot(temps, die_dc):
            self.why = "hot"
            self.active = False
            return 0
        self._span(cells)
        if self.mode == MANUAL:
            if ticks_diff(now, self.until_ms) >= 0:
                self.mode = self.prev_mode
                self.why = "timeout"
                return self.choose(now, cells, i_ma, temps, die_dc)
            self.why = "manual"
            return self._manual(cells)
        on = self.active
        self.active = False
        if i_ma < -self.cfg.dir_ma and not self.cfg.bal_dsg:
            self.why = "discharging"
            return 0
        if self._hi < self.cfg.bal_start_mv:
            self.why = "low"
            return 0
        d = self._hi - self._lo
        if d <= self.cfg.bal_stop_dmv or (not on and d < self.cfg.bal_start_dmv):
            self.why = "balanced"
            return 0
        self.active = True
        self.why = "auto"
        return self._pick(cells, self._lo + self.cfg.bal_stop_dmv)

    def _hot(self, temps, die_dc):
        c = self.cfg
        if die_dc is not None and die_dc > c.bal_die_dc:
            return True
        k = 0
        while k < len(temps):
            t = temps[k]
            if t is not None and t > c.bal_tmax_dc:
                return True
            k += 1
        return False

    def _span(self, cells):
        lo = 32767
        hi = -32768
        k = 0
        while k < self.n:
            v = cells[k]
            lo = v if v < lo else lo
            hi = v if v > hi else hi
            k += 1
        self._lo = lo
        self._hi = hi

    def _manual(self, cells):
        m = 0
        k = 0
        while k < self.n:  # never below the lowest cell, even by hand
            if self.want >> k & 1 and cells[k] > self._lo:
                m |= 1 << k
            k += 1
        return m

    def _pick(self, cells, floor):
        # the highest cells above floor (lowest + stop delta), no two adjacent, at most bal_max_cells
        m = 0
        j = 0
        while j < self.cfg.bal_max_cells:
            b = self._best(cells, floor, m)
            if b < 0:
                break
            m |= 1 << b
            j += 1
        return m

    def _best(self, cells, bv, m):
        near = m | m >> 1 | m << 1
        best = -1
        k = 0
        while k < self.n:
            if cells[k] > bv and not near >> k & 1:
                best = k
                bv = cells[k]
            k += 1
        return best

    def state(self):
        return {"mode": self.mode if self.mode != MANUAL else self.prev_mode, "s": list(self.bal_s),
                "mah": list(self.bled_mah)}
