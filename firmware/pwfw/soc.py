# State-of-charge estimator: integer coulomb counting at the core, voltage corrections only where the
# cell model says voltage is informative, drift-not-jump application, per-cell deltas, capacity learning.
# Every per-update value stays a small int (|x| < 2**30) so MicroPython never allocates in update().
# Units: SoC in ppm (1e6 = full), voltages in uV, current in mA, resistance in uOhm, time in ms.
from array import array

from pwfw.compat import MICROPYTHON, const, micropython, unload

if not MICROPYTHON:
    from pwfw.compat import ptr16, ptr32


def load_model(src):
    """pwfw.soc_model.load_model (pwfw.soc.load_model is API): the model's builder is init-only, so on
    MicroPython it is loaded for this and dropped (a Model holds no code of it)."""
    from pwfw import soc_model

    try:
        return soc_model.load_model(src)
    finally:
        soc_model = None
        if MICROPYTHON:
            unload("soc_model")


_PPM = const(1000000)
_DT_MAX = const(250)          # longer steps are split so 10*i*dt stays a small int
_I_MAX = const(300000)        # mA clamp (300 A)
_WIN_MS = const(10000)        # voltage corrections once per window of averaged samples
_WIN_N = const(100)           # samples summed per window (bounds the sums)
_RATE = const(2)              # applied correction at most 2 ppm per ms (0.2 %/s): drift, not jump
_SIG_MIN = const(3000)        # 0.3 % floor on the pack sigma
_SIG_MAX = const(600000)
_SIGD_MAX = const(200000)
_SYNC_SIG = const(8000)       # 0.8 %: what "full at CV tail" / "empty at cut-off" is worth
_K_GAIN = const(12000)        # sigma growth per unit |dSoC| counted (ppm/1e6): gain + capacity error
_K_CELL = const(15000)        # per-cell delta growth per |dSoC| (capacity spread between cells)
_OFF_TAU = const(120000)      # ms, offset learning time constant at rest
_REST_MS = const(30000)       # rest this long before learning the offset / trusting relaxation
_FULL_MS = const(20000)       # CV tail held this long before the 100 % sync
_H1 = const(32767)            # hysteresis state +1 (charge branch) in Q15
_IR_PCT = const(45)          # % of the IR drop counted as model error under load (ageing, diffusion)
_CQ0 = const(500)             # capacity: 1-sigma of the nominal value, permyriad (5 %: ageing, spread)
_CQ_MIN = const(50)
_LEARN_D = const(150000)      # learn capacity between confident points at least 15 % apart
_LEARN_SIG = const(8000)      # a confident point: a sync, or sigma <= 0.8 % after a correction at rest
_LEARN_REST = const(600000)   # ... of 10 min or more (relaxed: NMC's slow RC, most of LFP's)
_CALM_MS = const(1200000)     # after a window above C/10: no plateau corrections for 20 min (RC, hysteresis)
_FLAT_UV = const(40000)       # "plateau": the OCV moves less than 40 mV over +-10 % around the estimate

# @micropython.native keeps each call's frame on the C stack: bytecode frames this size would be
# heap-allocated per call (compat.micropython is a no-op stand-in on CPython).


@micropython.viper
def _isqrt(n: int) -> int:
    # viper (machine words): every caller's argument is below 2**30, so it holds on a 32-bit port
    if n <= 0:
        return 0
    x = 1
    while x * x < n:  # machine words: n < 2**30 keeps x <= 2**15 and its square within 32 bits
        x <<= 1
    while True:
        y = (x + n // x) >> 1
        if y >= x:
            return x
        x = y


def _sqrt1m(f):
    # sqrt(1 - f) in Q15 for a gain f in Q15 (0..32768): _isqrt((32768 - f) << 15), where f = 0 would
    # make the argument 2**30, one past a 32-bit port's small ints (a big int allocated)
    return 32768 if f == 0 else _isqrt((32768 - f) << 15)


def _rss(a, b, c, d):
    # root of sum of squares, each term clamped so the squares stay small ints
    a = min(abs(a), 15000)
    b = min(abs(b), 15000)
    c = min(abs(c), 15000)
    d = min(abs(d), 15000)
    return _isqrt(a * a + b * b + c * c + d * d)


@micropython.native
def _gain(p, m):
    # Kalman gain p^2 / (p^2 + m^2) in Q15 for a prior sigma p and a measurement sigma m (both > 0),
    # scaled to 7 bits first so the squares stay small ints
    mx = max(p, m)
    a = p * 128 // mx
    b = m * 128 // mx
    return (a * a << 15) // max(1, a * a + b * b)


# Estimator._hot (array('i')): the state only the per-sample path uses (remainders, accumulators) and
# copies of constants it needs, as 32-bit words: viper reads them without an attribute lookup each
_CC_REM = const(0)            # coulomb-count remainder, 0.1 mA*ms
_SIG_ACC = const(1)           # sigma growth not yet added (ppm * 1e6)
_SIGC_ACC = const(2)          # same for the cell sigma
_HYST_ACC = const(3)          # |dSoC| * gamma towards the next h step
_RC1_REM = const(4)           # RC integration remainders
_RC2_REM = const(5)
_I_LAST = const(6)            # the last step's current (mA), for _win_di_q
_TAU1 = const(7)              # constants: m.tau1_ms, m.tau2_ms, m.gamma, _i_max_ma,
_TAU2 = const(8)
_GAMMA = const(9)
_IMAX = const(10)
_VLO = const(11)              # the plausible cell range (mV),
_VHI = const(12)
_GLAST = const(13)            # the SoC grid's last index
_W_I = const(14)              # the window's sums: _win_i_q, _win_rc_uv, _win_soc_q, _win_di_q, _win_ms, which
_W_RC = const(15)             # _step copies into those attributes once the window is complete (for _correct)
_W_SOC = const(16)
_W_DI = const(17)
_W_MS = const(18)
_NHOT = const(19)


# The per-sample path in viper: machine-word arithmetic, ~5x faster than native code on Python ints,
# nothing allocated. cells_mv is indexed generically (int(x[k])), so it may be a list or any int array
# (an array of 2-byte items, pack.cells, is read as 16-bit words: _is16); the estimator's own
# array('i') are read through ptr32, which a 64-bit port loads unsigned: values that may be negative
# are sign-extended with (v << w) >> w, w = _WSH (0 on a 32-bit port, 32 on a 64-bit one)
@micropython.viper
def _wsh() -> int:
    b = 1
    b <<= 31  # not a literal: a 32-bit port's compiler would make 1 << 31 a big int
    return 32 if b > 0 else 0


_WSH = _wsh() if MICROPYTHON else 0  # CPython: ptr32 is the array itself, already signed


# Table lookups in viper: the SoC grid (0..1e6 ppm, never negative, its last point 1e6: the searches
# stop there) is read as 32-bit words, the same on every port; table values are read generically
# (int(x[j])) so their signs survive on a 64-bit port.
@micropython.viper
def _tab_v(tab, soc, s: int) -> int:
    """tab interpolated at s (ppm) on the grid soc; the end values outside it."""
    if s <= 0:
        return int(tab[0])
    if s >= 1000000:
        return int(tab[int(len(tab)) - 1])
    t = ptr32(soc)
    j = 1
    while int(t[j]) < s:
        j += 1
    a = int(t[j - 1])
    v0 = int(tab[j - 1])
    return v0 + (int(tab[j]) - v0) * ((s - a) // 100) // ((int(t[j]) - a) // 100)


@micropython.viper
def _ocv_v(soc, mid, half, s: int, h: int, slope) -> int:
    """OCV (uV) at s on the branch h (hysteresis state in Q15 >> 5); this segment's slope in uV per
    pm into slope[0] (at least 1). One segment search serves the slope and both tables."""
    c = s
    if c < 0:
        c = 0
    elif c > 1000000:
        c = 1000000
    t = ptr32(soc)
    j = 1
    while int(t[j]) < c:
        j += 1
    a = int(t[j - 1])
    w = int(t[j]) - a
    m0 = int(mid[j - 1])
    m1 = int(mid[j])
    h0 = int(half[j - 1])
    h1 = int(half[j])
    g = ((m1 - m0) + ((h1 - h0) * h >> 10)) * 1000 // w
    if g < 1:
        g = 1
    slope[0] = g
    if s <= 0:
        v = m0 + (h0 * h >> 10) + s // 1000 * g  # beyond the table: the end slope keeps the sign
    elif s >= 1000000:
        v = m1 + (h1 * h >> 10) + (s - 1000000) // 1000 * g
    else:
        f = (s - a) // 100
        w = w // 100
        v = m0 + (m1 - m0) * f // w + ((h0 + (h1 - h0) * f // w) * h >> 10)
    return v


@micropython.viper
def _inv_v(soc, mid, half, v: int, h: int) -> int:
    """SoC (ppm) where mid + h*half == v (h: the branch in Q15 >> 5)."""
    t = ptr32(soc)
    n = int(len(soc))
    prev = int(mid[0]) + (int(half[0]) * h >> 10)
    if v <= prev:
        return 0
    j = 1
    while j < n:
        cur = int(mid[j]) + (int(half[j]) * h >> 10)
        if v <= cur:
            if cur <= prev:
                return int(t[j])
            return int(t[j - 1]) + (v - prev) * ((int(t[j]) - int(t[j - 1])) // 100) // (cur - prev) * 100
        prev = cur
        j += 1
    return 1000000


class Estimator:
    def __init__(self, model, n_cells, capacity_mah):
        m = load_model(model)
        self.m = m
        self.n = n_cells
        self.cap_nom = int(capacity_mah)
        # resistances of one series element of this pack: the model cell scaled by capacity
        sc = m.cap_mah / self.cap_nom
        g = len(m.soc)
        self._r0 = array("i", [int(m.r0[j] * sc) for j in range(g)])
        self._r1 = array("i", [int(m.r1[j] * sc) for j in range(g)])
        self._r2 = array("i", [int(m.r2[j] * sc) for j in range(g)])
        rmax = max(max(self._r0), max(self._r1), max(self._r2), 1)
        self._i_max_ma = min(_I_MAX, (1 << 29) // rmax)
        self.cell_soc_pm = array("h", [0] * n_cells)
        self._cell_d_ppm = array("i", [0] * n_cells)      # per-cell SoC minus pack average (ppm)
        self._cell_pend_ppm = array("i", [0] * n_cells)   # their pending corrections (ppm)
        self._win_cell_mv = array("i", [0] * n_cells)     # window sums of cell mV (then: innovations, uV)
        self._win_n = 0                         # (set again by _clear_win; here first, for its type)
        self.fault = 0                          # bit0: implausible cell voltage seen (sample skipped)
        self.t_dc = None
        self._slope_uv_pm = 1                   # OCV slope (uV per pm) of the last _ocv() lookup
        self._slope = array("i", [1])           # where _ocv_v leaves it
        self._cells = array("i", [0] * n_cells)          # the sample's cells (mV), for the window sums
        self._slope_mean = 1                    # mean cell slope of the last window
        self.syncs = 0
        self.cap_learns = 0
        h = array("i", [0] * _NHOT)
        h[_TAU1] = m.tau1_ms
        h[_TAU2] = m.tau2_ms
        h[_GAMMA] = m.gamma
        h[_IMAX] = self._i_max_ma
        h[_VLO] = m.v_cut_uv // 1000 - 800
        h[_VHI] = m.v_full_uv // 1000 + 800
        h[_GLAST] = g - 1
        self._hot = h
        self._csrc = None                       # the last cells_mv seen, and whether it is read as 16-bit words
        self._c16 = False
        self.reset()

    # ---- persistence / control -------------------------------------------------------------
    def reset(self):
        """First-boot state: SoC comes from the next voltage sample, with a voltage-derived sigma."""
        self.cap_mah = self.cap_nom
        self._cc_per_ppm = self.cap_mah * 36              # 0.1 mA*ms per ppm of the capacity
        self._cap_sig_pmy = _CQ0                          # capacity 1-sigma, permyriad
        self._started = False                             # False until the first sample sets the SoC
        self._soc_ppm = 500000                            # pack average SoC (ppm)
        self._pend_ppm = 0                                # correction still to be applied to it (ppm)
        self._sig_ppm = _SIG_MAX                          # 1-sigma of the pack average (ppm)
        self._sig_cell_ppm = 50000                        # 1-sigma of a cell's delta (ppm)
        self._hyst_q15 = 0                                # hysteresis state h, -1..+1 in Q15
        for k in range(_TAU1):                            # remainders, accumulators (_hot)
            self._hot[k] = 0
        self._off_ma1024 = 0                              # learned current offset, mA * 1024
        self._rc1_uv = 0                                  # RC branch voltages (uV)
        self._rc2_uv = 0
        self._rest_ms = 0                                 # time the current has been at rest
        self._calm_ms = _CALM_MS                          # time since the last window above C/10
        self._full_ms = 0                                 # time at the CV tail
        self._vmin_mv = 99999                             # lowest cell of the last sample
        self._full_latch = False
        self._empty_latch = False
        self._ref_ppm = 0                                 # the last confident point (ppm) and its sigma
        self._ref_sig_ppm = 0                             # (0: none)
        self._cc_ppm = 0                                  # counted ppm since that point
        self._told = False                                # a told state (set_soc, restore) no window confirmed
        self._doubt_ppm = 0                               # what the voltage says it may be off by (ppm)
        self._top_ds = 0                                  # the top of charge's cell (_innovations)
        self._top_de = 0
        for k in range(self.n):
            self._cell_d_ppm[k] = 0
            self._cell_pend_ppm[k] = 0
        self._clear_win()
        self.soc_pm = 500
        self.sigma_pm = _SIG_MAX // 1000
        self._report()

    def set_soc(self, pm, sigma_pm=30):
        """Force the pack SoC (per mille), e.g. a known state; per-cell deltas are kept, so the average
        is placed where the reported (weakest-cell-limited) pack SoC comes out at pm."""
        pm = max(0, min(1000, int(pm)))
        dmin = min(self._cell_d_ppm)
        dmax = max(self._cell_d_ppm)
        # pack = (s + dmin) / (1 - (dmax - dmin)) in ppm, solved for s and rounded up, so that _report's
        # floor comes out at pm exactly (one ppm of s moves the pack by less than one per mille)
        self._soc_ppm = max(-_PPM // 5, min(_PPM * 6 // 5, -(-pm * (1000000 - (dmax - dmin)) // 1000) - dmin))
        self._pend_ppm = 0
        self._sig_ppm = max(_SIG_MIN, min(_SIG_MAX, int(sigma_pm) * 1000))
        self._started = True
        self._told = True
        self._learn(self._soc_ppm, self._sig_ppm)         # a known state is a (weak) point for capacity learning
        self._report()

    def state(self):
        """Small dict of ints to persist: s, p (pending) in ppm, sig/sigd ppm, h Q15, cap mAh and its 1-sigma
        cq (permyriad), off mA*1024, cd/cp: per-cell deltas and their pending corrections (ppm), one int per
        cell."""
        return {"s": self._soc_ppm, "p": self._pend_ppm, "sig": self._sig_ppm, "sigd": self._sig_cell_ppm,
                "h": self._hyst_q15, "cap": self.cap_mah, "cq": self._cap_sig_pmy, "off": self._off_ma1024,
                "cd": list(self._cell_d_ppm), "cp": list(self._cell_pend_ppm)}

    def restore(self, d):
        try:
            s = int(d["s"])
            sig = int(d["sig"])
            h = int(d["h"])
            cap = int(d["cap"])
            cq = int(d.get("cq", _CQ0))
            off = int(d.get("off", 0))
            p = int(d.get("p", 0))
            cd = [int(x) for x in d.get("cd") or ()]
            cp = [int(x) for x in d.get("cp") or ()]
        except (KeyError, TypeError, ValueError):
            raise ValueError("soc: bad persisted state")
        if not (-_PPM // 5 <= s <= _PPM * 6 // 5 and 0 < sig <= _SIG_MAX and -_H1 <= h <= _H1
                and self.cap_nom // 2 <= cap <= self.cap_nom * 2 and abs(p) <= _PPM):
            raise ValueError("soc: persisted state out of range")
        self.reset()
        self._soc_ppm = s
        self._pend_ppm = p
        self._sig_ppm = max(_SIG_MIN, sig)
        self._hyst_q15 = h
        self.cap_mah = cap
        self._cc_per_ppm = cap * 36
        self._cap_sig_pmy = max(_CQ_MIN, min(_CQ0, cq))
        self._off_ma1024 = max(-self.cap_nom * 5, min(self.cap_nom * 5, off))
        if len(cd) == self.n:
            for k in range(self.n):
                self._cell_d_ppm[k] = max(-300000, min(300000, cd[k]))
                self._cell_pend_ppm[k] = max(-300000, min(300000, cp[k])) if len(cp) == self.n else 0
            self._sig_cell_ppm = max(_SIG_MIN, min(_SIGD_MAX, int(d.get("sigd", 20000))))
        self._started = True
        self._told = True
        self._learn(s + p, self._sig_ppm)
        self._report()

    # ---- tables ------------------------------------------------------------------------------
    def _tab(self, tab, s):
        return _tab_v(tab, self.m.soc, s)

    @micropython.native
    def _ocv(self, s):
        # OCV on the current hysteresis branch (uV); slope of this segment in uV per pm -> self._slope_uv_pm
        m = self.m
        v = _ocv_v(m.soc, m.mid, m.half, s, self._hyst_q15 >> 5, self._slope)
        self._slope_uv_pm = self._slope[0]
        return v

    def _inv(self, v, hq):
        # SoC (ppm) where mid + h*half == v (hq: h in Q15, +_H1 charge branch, -_H1 discharge)
        m = self.m
        return _inv_v(m.soc, m.mid, m.half, v, hq >> 5)

    def _lag(self, s):
        # surface - bulk SoC (ppm): the current filtered by the slow RC (v2 / r2) times tau2 / capacity
        # (a sphere: surface - mean = I*tau_D/15 with its slowest mode tau2 ~ tau_D/20). At most what v2
        # amounts to on the mid-range slope: there the RC branch was fitted and the lag is all it sees.
        # Bytecode in few locals and no builtin calls: its frame stays within the ~11 words MicroPython
        # keeps on the C stack (0 B per call), and its native code was rp2 heap (once per window).
        r2 = self._tab(self._r2, s)
        if r2 <= 0:
            return 0
        c = self._rc2_uv * 1000 // r2 * 1000 // self.cap_mah   # C-rate, per mille
        if c > 5000:
            c = 5000
        elif c < -5000:
            c = -5000
        s = self.m.tau2_ms // 1000
        if s > 36000:
            s = 36000
        x = (c if c >= 0 else -c) * s // 18 * 5
        if x > 300000:
            x = 300000
        r2 = self._rc2_uv
        r2 = (r2 if r2 >= 0 else -r2) * 1000 // self.m.g_mid
        if r2 < x:
            x = r2
        return x if c > 0 else -x

    # ---- the update --------------------------------------------------------------------------
    @micropython.native
    def update(self, dt_ms, i_ma, cells_mv, t_dc, i_avg_ma=None):
        """One sample: dt_ms since the last one, pack current (mA, + = charging), cell voltages (mV).
        i_avg_ma: the mean current over dt_ms from a charge accumulator (pwfw.plaus.Counter), which is
        what is counted; i_ma, the current at the sample, stays for the voltage correction (IR drop)."""
        self.t_dc = t_dc
        ok = _sample(self, i_ma, cells_mv)  # the class's functions called as plain ones (below the class):
        if dt_ms <= 0:                       # ~5 us less than a method call each on the RP2040
            _report(self)
            return
        if i_avg_ma is not None:
            i_ma = i_avg_ma
        while dt_ms > _DT_MAX:
            _step(self, _DT_MAX, i_ma)
            dt_ms -= _DT_MAX
        if _step(self, dt_ms, i_ma) >= _WIN_MS and ok:
            self._correct()
        _report(self)

    @micropython.viper
    def _sample(self, i_ma: int, cells_mv) -> int:
        # the cells checked (each read once, generically: any int sequence) into _cells, then into the
        # window sums; 0 when the sample is not usable
        n = int(self.n)
        if int(len(cells_mv)) < n:
            self.fault = int(self.fault) | 1
            return 0
        h = ptr32(self._hot)
        lo = h[_VLO]
        hi = h[_VHI]
        tmp = ptr32(self._cells)
        if cells_mv is not self._csrc:
            self._csrc = cells_mv
            self._c16 = self._is16(cells_mv)
        k = 0
        if self._c16:
            c = ptr16(cells_mv)
            while k < n:
                tmp[k] = c[k]  # unsigned: a negative 'h' reads >= 32768, implausible either way
                k += 1
        else:
            while k < n:
                tmp[k] = int(cells_mv[k])
                k += 1
        vmin = 99999
        k = 0
        while k < n:
            v = tmp[k]
            if v < lo or v > hi:  # implausible: skipped
                self.fault = int(self.fault) | 1
                return 0
            if v < vmin:
                vmin = v
            k += 1
        if not self._started:
            self._first(i_ma, cells_mv)
        self._vmin_mv = vmin
        wn = int(self._win_n)
        if wn < _WIN_N:
            sums = ptr32(self._win_cell_mv)
            k = 0
            while k < n:
                sums[k] = sums[k] + tmp[k]  # 32-bit words, stored truncated: exact on every port
                k += 1
            self._win_n = wn + 1
            x = i_ma
            if x > _I_MAX:
                x = _I_MAX
            elif x < 0 - _I_MAX:
                x = 0 - _I_MAX
            h[_W_I] = h[_W_I] + x // 4  # 32-bit words, stored truncated: exact on every port
            h[_W_RC] = h[_W_RC] + int(self._rc1_uv) + int(self._rc2_uv)
            h[_W_SOC] = h[_W_SOC] + (int(self._soc_ppm) + int(self._pend_ppm)) // 8
        return 1

    def _is16(self, c):
        # an array of 2-byte items (pack.cells: array('h')) is read as 16-bit words, unsigned: only where
        # the plausible range lies within 0..32767 (checked once per object: bytes() allocates)
        h = self._hot
        return type(c) is array and len(bytes(c)) == 2 * len(c) and h[_VLO] >= 0 and h[_VHI] < 32768

    def _first(self, i_ma, cells_mv):
        # first boot: SoC interval consistent with the mean voltage on either hysteresis branch (bytecode:
        # it runs once, and its native code took ~0.8 KB of the rp2 heap)
        n = self.n
        tot = 0
        for k in range(n):
            tot += cells_mv[k]
        v = tot * 1000 // n - max(-self._i_max_ma, min(self._i_max_ma, i_ma)) * self._tab(self._r0, 500000) // 1000
        # twice the model's OCV error: a generic model is not the user's cell (LFP plateau: tens of mV)
        e = 2 * self.m.boot_err_uv + 5000 + abs(i_ma) * self._tab(self._r0, 500000) // 2000
        lo = self._inv(v - e, _H1)
        hi = self._inv(v + e, -_H1)
        self._soc_ppm = (lo + hi) // 2
        self._pend_ppm = 0
        self._sig_ppm = max(20000, min(_SIG_MAX, (hi - lo) * 3 // 10 + 10000))
        self._sig_cell_ppm = 50000
        self._started = True

    def _clear_win(self):
        for k in range(self.n):
            self._win_cell_mv[k] = 0
        self._win_n = 0                                   # samples summed in this window
        self._win_i_q = 0                                 # sum of current / 4 (mA)
        self._win_rc_uv = 0                               # sum of the RC voltages (uV)
        self._win_soc_q = 0                               # sum of (soc + pending) / 8 (ppm)
        self._win_ms = 0
        self._win_di_q = 0                                # sum of |current change| / 16 (mA)
        h = self._hot                                     # and as the sample path keeps them
        h[_I_LAST] = 0
        for k in range(_W_I, _NHOT):
            h[k] = 0

    @micropython.viper
    def _step(self, dt: int, i_ma: int) -> int:
        # machine words throughout: every value stays below 2**30 (32-bit safe); the state only this
        # path uses is in _hot, the rest are attributes read and written once
        h = ptr32(self._hot)
        w = int(_WSH)
        i = i_ma  # calibrated already (Config.current_ma: i_offset_ma, i_gain_ppm)
        cap = int(self.cap_mah)
        rest_lim = cap // 200                             # C/200
        # rest: the raw reading itself is below C/200 (not relative to the learned offset, which could
        # then creep along a slowly ramping small current); the learned offset stays within +-C/200
        o = int(self._off_ma1024)
        if i >= 0 - rest_lim and i <= rest_lim:
            r = int(self._rest_ms) + dt
            if r >= _REST_MS:                                # the pack rests: what we read is offset
                o += ((i << 10) - o) * dt // _OFF_TAU
                lo = rest_lim << 10
                if o > lo:
                    o = lo
                elif o < 0 - lo:
                    o = 0 - lo
                self._off_ma1024 = o
            if r > 1 << 28:
                r = 1 << 28                                  # stays a small int (about 3 days)
            self._rest_ms = r
        else:
            r = 0
            self._rest_ms = 0
        i -= o >> 10
        lo = h[_IMAX]
        if i > lo:
            i = lo
        elif i < 0 - lo:
            i = 0 - lo
        x = i - ((h[_I_LAST] << w) >> w)
        h[_W_DI] = h[_W_DI] + (x if x >= 0 else 0 - x) // 16
        h[_I_LAST] = i
        wm = h[_W_MS] + dt
        h[_W_MS] = wm
        if wm >= _WIN_MS:  # the window is complete: its sums where _correct reads them
            self._win_i_q = (h[_W_I] << w) >> w
            self._win_rc_uv = (h[_W_RC] << w) >> w
            self._win_soc_q = (h[_W_SOC] << w) >> w
            self._win_di_q = h[_W_DI]
            self._win_ms = wm
        # coulomb counting, exact in 0.1 mA*ms
        cpp = int(self._cc_per_ppm)
        x = ((h[_CC_REM] << w) >> w) + 10 * i * dt
        ds = x // cpp
        h[_CC_REM] = x - ds * cpp
        soc = int(self._soc_ppm) + ds
        x = int(self._cc_ppm) + ds
        if x > 4 * _PPM:
            x = 4 * _PPM
        elif x < -4 * _PPM:
            x = -4 * _PPM
        self._cc_ppm = x
        a = ds if ds >= 0 else 0 - ds
        # systematic error growth: gain/capacity (per |dSoC|) and residual offset (per time)
        x = h[_SIG_ACC] + a * _K_GAIN + dt * (600 if r >= _REST_MS else 280)
        if x >= _PPM:
            y = int(self._sig_ppm) + x // _PPM
            self._sig_ppm = y if y < _SIG_MAX else _SIG_MAX
            x %= _PPM
        h[_SIG_ACC] = x
        x = h[_SIGC_ACC] + a * _K_CELL
        if x >= _PPM:
            y = int(self._sig_cell_ppm) + x // _PPM
            self._sig_cell_ppm = y if y < _SIGD_MAX else _SIGD_MAX
            x %= _PPM
        h[_SIGC_ACC] = x
        # one-state hysteresis: moves toward the branch of the current's sign
        if i != 0:
            tgt = _H1 if i > 0 else 0 - _H1
            x = h[_HYST_ACC] + a * h[_GAMMA]
            h[_HYST_ACC] = x
            hq = int(self._hyst_q15)
            dh = ((tgt - hq) >> 4) * ((x if x < 250000 else 250000) >> 2) // 15625
            if x >= _PPM:
                self._hyst_q15 = tgt
                h[_HYST_ACC] = 0
            elif dh != 0:
                self._hyst_q15 = hq + dh
                h[_HYST_ACC] = 0
        # two RC branches, integrated exactly with remainders; R1, R2 at soc (one grid search, as _tab_v)
        t1 = ptr32(self._r1)
        t2 = ptr32(self._r2)
        if soc <= 0:
            r1 = (t1[0] << w) >> w
            r2 = (t2[0] << w) >> w
        elif soc >= 1000000:
            j = h[_GLAST]
            r1 = (t1[j] << w) >> w
            r2 = (t2[j] << w) >> w
        else:
            g = ptr32(self.m.soc)
            j = 1
            while g[j] < soc:
                j += 1
            a = g[j - 1]
            f = (soc - a) // 100
            a = (g[j] - a) // 100
            r1 = (t1[j - 1] << w) >> w
            r1 += (((t1[j] << w) >> w) - r1) * f // a
            r2 = (t2[j - 1] << w) >> w
            r2 += (((t2[j] << w) >> w) - r2) * f // a
        v = int(self._rc1_uv)
        x = i * r1 // 1000 - v
        if x > 500000:
            x = 500000
        elif x < -500000:
            x = -500000
        d = x * dt + ((h[_RC1_REM] << w) >> w)
        q = d // h[_TAU1]
        h[_RC1_REM] = d - q * h[_TAU1]
        if q:
            self._rc1_uv = v + q
        v = int(self._rc2_uv)
        x = i * r2 // 1000 - v
        if x > 500000:
            x = 500000
        elif x < -500000:
            x = -500000
        d = x * dt + ((h[_RC2_REM] << w) >> w)
        q = d // h[_TAU2]
        h[_RC2_REM] = d - q * h[_TAU2]
        if q:
            self._rc2_uv = v + q
        # apply pending corrections at a bounded rate
        lim = _RATE * dt
        p = int(self._pend_ppm)
        if p:
            if p > lim:
                p = lim
            elif p < 0 - lim:
                p = 0 - lim
            soc += p
            self._pend_ppm = int(self._pend_ppm) - p
        self._soc_ppm = soc
        # and the pending per-cell ones
        dd = ptr32(self._cell_d_ppm)
        pd = ptr32(self._cell_pend_ppm)
        n = int(self.n)
        k = 0
        while k < n:
            p = (pd[k] << w) >> w
            if p:
                if p > lim:
                    p = lim
                elif p < 0 - lim:
                    p = 0 - lim
                dd[k] = dd[k] + p  # stored truncated to 32 bits: exact on every port
                pd[k] = pd[k] - p
            k += 1
        self._sync(i, dt)
        return wm

    @micropython.native
    def _sync(self, i, dt):
        m = self.m
        tail = self.cap_mah * m.tail_c_pm // 1000
        # 100 %: CV hold reached (the mean or the highest cell at full voltage), current tapered to the tail
        tgt = self._full() if self._win_n and 0 < i <= tail and self._win_cell_mv[0] else -1
        if tgt >= 0:
            self._full_ms += dt
            if self._full_ms >= _FULL_MS and not self._full_latch:
                self._full_latch = True
                self._anchor(tgt)
        else:
            self._full_ms = 0
            if i < -tail:
                self._full_latch = False
        # 0 %: the weakest cell at the cut-off voltage
        if i <= 0 and self._win_n and self._vmin_mv * 1000 <= m.v_cut_uv:
            if not self._empty_latch:
                self._empty_latch = True
                k0 = 0
                for k in range(self.n):
                    if self._cell_d_ppm[k] + self._cell_pend_ppm[k] < self._cell_d_ppm[k0] + self._cell_pend_ppm[k0]:
                        k0 = k
                # under load the surface empties first: the bulk still holds the lag beyond what it
                # holds at the C/20 cut-off that defines 0 %
                x = max(0, -self._lag(self._soc_ppm) - 50 * (m.tau2_ms // 1000) * 5 // 18)
                # with a generic model, what the cut-off is worth: the SoC that the IR drop's model
                # error (a load) and the tables' distance from the cell (where its knee lies) may hide
                s_ir = 0
                s_tab = 0
                if m.cell_err_uv > m.ocv_err_uv:
                    v0 = self._inv(m.v_cut_uv, -_H1)
                    ir = abs(i) * self._tab(self._r0, 0) // 1000 * _IR_PCT // 100
                    s_ir = self._inv(m.v_cut_uv + ir, -_H1) - v0
                    s_tab = self._inv(m.v_cut_uv + 2 * m.cell_err_uv, -_H1) - v0
                self._anchor(x - (self._cell_d_ppm[k0] + self._cell_pend_ppm[k0]),
                             _rss(_SYNC_SIG >> 6, x >> 7, s_ir >> 6, s_tab >> 6) << 6)
        elif i > tail:
            self._empty_latch = False

    def _full(self):
        # the 100 % target at a CV tail, or -1: with the mean cell at full voltage (a pack-level CV) the
        # average cell is full; with only the highest cell there (a charge limited per cell), that cell is
        wn = self._win_n
        t = 0
        kh = 0
        vh = 0
        for k in range(self.n):
            v = self._win_cell_mv[k] // wn
            t += v
            if v > vh:
                vh = v
                kh = k
        if t // self.n * 1000 >= self.m.v_full_uv:
            return _PPM
        if vh * 1000 >= self.m.v_full_uv:
            return _PPM - self._cell_d_ppm[kh] - self._cell_pend_ppm[kh]
        return -1

    def _anchor(self, target, sig=_SYNC_SIG):
        # a sync: pull the pack to target (drifting); a confident point for capacity learning
        self.syncs += 1
        self._proven()
        self._pend_ppm += target - (self._soc_ppm + self._pend_ppm)
        self._sig_ppm = sig
        self._learn(target, sig)

    @micropython.native
    def _learn(self, now, sig):
        # capacity as a filtered state: between two confident points (syncs, rested corrections with a
        # small sigma) at least _LEARN_D apart, counting moved cc where the estimate moved d; the ratio
        # measures the capacity to within the two points' sigmas over d. Many small noisy looks, or one
        # full-to-empty, both converge; a wrong one moves it only as far as its sigma allows.
        d = now - self._ref_ppm
        if self._ref_sig_ppm and abs(d) >= _LEARN_D and (self._cc_ppm > 0) == (d > 0):
            x = max(-3000, min(2000, (abs(self._cc_ppm) // 100) * 10000 // (abs(d) // 100) - 10000))
            sm = max(1, _rss(self._ref_sig_ppm >> 2, sig >> 2, 0, 0) * 40000 // abs(d))
            cq = self._cap_sig_pmy
            k = _gain(cq, sm)
            lo = self.cap_nom * 7 // 10
            hi = self.cap_nom * 12 // 10
            self.cap_mah = max(lo, min(hi, self.cap_mah + self.cap_mah // 100 * (x * (k >> 5) >> 10) // 100))
            self._cc_per_ppm = self.cap_mah * 36
            self._cap_sig_pmy = max(_CQ_MIN, cq * _isqrt((32767 - k) << 15) >> 15)
            self.cap_learns += 1
        self._ref_ppm = now
        self._ref_sig_ppm = sig
        self._cc_ppm = 0

    @micropython.native
    def _correct(self):
        # once per window of averaged samples: where the cell voltages put the pack (_correct_pack),
        # then what remains in each cell after that (_correct_cells)
        wn = self._win_n
        s = self._win_soc_q // wn * 8 + 4                  # mean of soc + pending over the window (ppm)
        i = self._win_i_q // wn * 4                        # mean current (mA)
        c = self._calm_ms + self._win_ms
        self._calm_ms = 0 if abs(i) > self.cap_mah // 10 else min(c, 1 << 28)
        ir = self._ir_err_uv(s, i)
        e = self._innovations(s, i)
        t = self._top_de  # at the top of charge (t != 0): at its highest cell (its SoC and innovation)
        sl = self._correct_pack(s + self._top_ds, i, e + t, ir, t)
        if self.n > 1:
            self._correct_cells(s, e, sl, ir)
        self._clear_win()

    def _proven(self):
        # an anchor or a steep part of the OCV has placed the pack: a told state is no longer in doubt
        self._told = False
        self._doubt_ppm = 0

    def _tw(self):
        # degC away from the model's 25 degC (its characterisation): R and RC roughly double per 20 degC
        # colder (Arrhenius), so what the model says of them is worth less; unknown temperature: 10 degC
        t = self.t_dc
        return 10 if t is None else min(40, abs(t - 250) // 10)

    def _ir_err_uv(self, s, i):
        # IR model error: 45 % of the IR drop (ageing, diffusion), 5 % more per degC away from the
        # model's temperature, plus the current changes in the window
        r0 = self._tab(self._r0, s)
        return (abs(i) * r0 // 1000 * (_IR_PCT + 5 * self._tw()) // 100
                + (self._win_di_q // self._win_n * 4) * r0 // 1000)

    @micropython.native
    def _innovations(self, s, i):
        """Each cell's measured OCV (window mean, IR- and RC-compensated) minus the model's at its SoC,
        into _win_cell_mv (reused: the sums are no longer needed); the mean slope into _slope_mean.
        Returns the mean innovation (uV)."""
        n = self.n
        wn = self._win_n
        vs = self._win_cell_mv
        comp = i * self._tab(self._r0, s) // 1000 + self._win_rc_uv // wn
        se = 0
        sg = 0
        vh = 0
        kh = 0
        for k in range(n):
            vk = (vs[k] // wn) * 1000 + (vs[k] % wn) * 1000 // wn - comp
            pk = self._ocv(s + self._cell_d_ppm[k] + self._cell_pend_ppm[k])
            if vk > vh:
                vh = vk
                kh = k
            vs[k] = max(-300000, min(300000, vk - pk))
            se += vs[k]
            sg += self._slope_uv_pm
        self._slope_mean = max(1, sg // n)
        # The top of charge: the highest cell past the upper knee (Model.v_top_uv) on the charge branch
        # places the pack, whatever the others show on the plateau (its 100 % is the pack's), also after
        # a charge cut there (CHG off, cell_ov: no CV tail follows): the window's
        # pack correction is then made at that cell (_top_ds: its SoC minus the pack's; _top_de: its
        # innovation minus the mean, which the per-cell corrections keep)
        e = se // n
        self._top_ds = 0
        self._top_de = 0
        if vh >= self.m.v_top_uv and self._hyst_q15 > 0:
            self._top_ds = self._cell_d_ppm[kh] + self._cell_pend_ppm[kh]
            self._top_de = vs[kh] - e
        return e

    @micropython.native
    def _pack_err_uv(self, s, ir):
        # what the model cannot explain in the pack's mean cell: OCV fit error, hysteresis branch, IR,
        # relaxation. Hysteresis: the unknown part of the branch plus half the width (the one-state
        # model is crude); relaxation: the modelled RC part plus the slow, hysteresis-linked part (LFP:
        # tens of minutes), decaying with the rest time, at least 2 mV under load
        m = self.m
        half = abs(self._tab(m.half, s))
        hu = half * ((_H1 - abs(self._hyst_q15) + _H1 // 2) >> 5) >> 10
        rlx = (abs(self._rc1_uv) + abs(self._rc2_uv)) * (6 + self._tw()) // 20   # 30 % at 25 degC
        rlx += max(2000, 2 * half) * 300 // (min(self._rest_ms, 36000000) // 1000 + 300)
        return max(500, min(120000, _rss(m.cell_err_uv >> 3, hu >> 3, ir >> 3, rlx >> 3) << 3))

    @micropython.native
    def _correct_pack(self, s, i, e, ir, top):
        """Pack update in the SoC domain from the mean innovation e (uV) at the window's estimate s (ppm)
        and mean current i (mA). Returns the surface-lag allowance (ppm) the per-cell part uses. top: at
        the top of charge s and e are its highest cell's (_innovations), used whatever the prior.

        Through the inverse OCV on the current branch: z is where the measured OCV puts the pack, sz a
        quarter of the SoC interval that +-2r spans (= r / slope where the OCV is straight; wider where
        +-2r reaches into a flatter part: a plateau edge has a long tail on its flat side). On a plateau
        that interval is wide (tens of %), so the voltage carries no weight there; at the knees, NMC, or
        after a long rest with the branch known it is narrow and corrects. Global inversion, not a local
        slope: a small steep bit or a knee edge next to a plateau cannot fake information."""
        hq = self._hyst_q15
        # (at the top of charge s is the highest cell's, and its voltage is past the knee: not flat)
        flat = not top and self._ocv(s + 100000) - self._ocv(s - 100000) < _FLAT_UV
        if flat and self._calm_ms < _CALM_MS:
            # on a plateau under or just after a load the voltage is not at rest (IR and RC at another
            # temperature or age than the model's, hysteresis): it would only move a right state or
            # shrink the sigma of a wrong one, so it is not used until the cell has settled
            return 0
        r = self._pack_err_uv(s, ir)
        vo = self._ocv(s) + e                              # the measured OCV of the mean cell
        z = self._inv(vo, hq)
        # surface lag: under a sustained load the particle surface runs ahead of the bulk by about the
        # charge moved within the slow time constant (solid diffusion), and the voltage reads the surface.
        # The slow RC branch models that linearly (v2), which holds on a plateau and on NMC; toward a knee
        # the OCV bends and the surface SoC reads several % off. The part of 1.5 x the lag whose OCV
        # change v2 does not account for counts as SoC-domain uncertainty of the measurement.
        sl = self._lag(s) * 3 // 2
        dv = abs(self._ocv(s + sl) - self._ocv(s))
        sl = ((abs(sl) >> 6) * (max(0, dv - abs(self._rc2_uv) // 2) >> 6) // max(1, dv >> 6)) << 6
        sz = (self._inv(vo + 2 * r, hq) - self._inv(vo - 2 * r, hq)) >> 2
        sz = max(1000, _rss(sz >> 6, sl >> 6, self.m.soc_err_ppm >> 6, 0) << 6)   # + the tables' SoC axis
        sig = self._sig_ppm
        sig0 = sig
        d = max(-_PPM, min(_PPM, z - s))
        # consistency of the prior with this window, in the voltage domain: is there a SoC within
        # s +- a*sigma (toward the measurement, plus the lag) whose OCV lies within sqrt(9 - a^2)*r of vo?
        # (combined 3-sigma test; the SoC-domain test alone misses a wrong prior next to a steep part)
        bad = abs(d) > 3 * (_rss(sig >> 6, sz >> 6, 0, 0) << 6)
        if not bad and abs(e) > 3 * r and abs(i) <= self.cap_mah // 5:
            bad = True
            a = 10                                              # a in tenths: 1, 2, 2.5, 2.9
            while a < 30:
                x = s - sig * a // 10 - sl if e < 0 else s + sig * a // 10 + sl
                dv = vo - self._ocv(x)
                if (dv >= 0 if e < 0 else dv <= 0) or abs(dv) * 10 <= r * _isqrt(900 - a * a) // 10:
                    bad = False
                    break
                a += 10 if a < 20 else (5 if a < 25 else 4)
        x = abs(d)
        if self._told and not (flat or bad) and x > 2 * sig and x > sz:
            # a told state (persisted, set) that no window of this boot has confirmed, and the voltage
            # puts the pack 2 sigma and its own sigma away: either may be right, so the reported sigma
            # covers both (_doubt_ppm); the estimate stays (the voltage is no better than the prior)
            self._doubt_ppm = x >> 1
        if bad:   # inconsistent: the prior is wrong by about d; widen sigma to that first. Found
            # before much was counted, the last confident point was not what it claimed (a wrong
            # persisted state): no capacity learning from it. Later, counting (the capacity) is to blame.
            sig = max(sig, min(_SIG_MAX, abs(d)))
            self._proven()                                # the told state is refuted: sigma says so
            if abs(self._cc_ppm) < _LEARN_D:
                self._ref_sig_ppm = 0
        # the voltage is used when it is at least as good as the prior (else, on a plateau or under load,
        # it would only bias), or when it has just shown the prior to be wrong
        if sz <= sig or bad or top:
            f = _gain(sig, sz)
            self._pend_ppm += d * (f >> 6) >> 9
            post = (sig >> 5) * _sqrt1m(f) >> 10
            floor = min(_SIG_MAX, sz * (self.m.cell_err_uv * 64 // r) >> 6)
            if bad and self.m.cell_err_uv > self.m.ocv_err_uv:
                # a generic model and the voltage disagree with the prior: the state was wrong, or the
                # tables do not fit this cell. Until an anchor decides, the estimate (moved by f*d)
                # keeps a sigma that covers both. (A fitted model: the state is to blame, as below.)
                floor = max(floor, min(_SIG_MAX, abs(d) >> 1))
                self._sig_ppm = max(_SIG_MIN, post, floor)
            else:
                self._sig_ppm = max(_SIG_MIN, post, min(sig, floor))
            if self._sig_ppm < sig0:
                if flat:
                    # on a plateau a wrong state looks like a right one (a few mV of model error, relaxation
                    # or an unknown hysteresis branch span tens of %): the voltage may move the estimate
                    # and widen its sigma, never narrow it; only an anchor (full, empty, a knee) does
                    self._sig_ppm = sig0
                else:
                    self._proven()                        # a steep part confirmed the state
            if self._rest_ms >= _LEARN_REST and self._sig_ppm <= _LEARN_SIG:
                self._learn(self._soc_ppm + self._pend_ppm, self._sig_ppm)
        else:
            self._sig_ppm = sig
        return sl

    @micropython.native
    def _correct_cells(self, s, e, sl, ir):
        """Per-cell deltas from what remains in each cell's innovation (_win_cell_mv) after the pack's
        mean e, at the window's pack estimate s; sl: the surface-lag allowance (ppm).

        Near a knee under load the cells sit on differently bent parts of the OCV, so the lag no longer
        cancels between them: a residual within the lag's voltage equivalent rl says nothing, only what
        exceeds it counts (a cell that is really weaker still shows), and the shared sigma shrinks less."""
        m = self.m
        n = self.n
        g = self._slope_mean
        rc = max(500, min(20000, _rss(m.ocv_err_uv, ir >> 1, 2000, 0)))   # a cell's measurement error
        rl = min(300000, sl // 1000 * g)
        sd = self._sig_cell_ppm
        d = self._cell_d_ppm
        pd = self._cell_pend_ppm
        tot = 0
        w = max(5000, sd)
        for k in range(n):
            sk = s + d[k] + pd[k]
            self._ocv(sk)                               # sets the local slope self._slope_uv_pm
            gk = self._slope_uv_pm
            # gate on the smaller of the local slope and the mean slope over +-sigma: a short steep
            # piece inside a plateau, narrower than the cell's own uncertainty, is no information
            # (a few mV of sensor offset there would move the cell by a % at a time)
            ak = gk * (sd // 100) // 10
            if ak < rc:
                continue
            gw = self._ocv(sk + w) - self._ocv(sk - w)
            q = gw // w  # gw * 500 // w, exactly, without gw * 500 (past 2**30 at a knee)
            gw = q * 500 + (gw - q * w) * 500 // w
            ak = min(20000, ak, gw * (sd // 100) // 10)
            if ak < rc:
                continue
            ek = self._win_cell_mv[k] - e
            ek = ek - rl if ek > rl else (ek + rl if ek < -rl else 0)
            fk = ak * ak // ((ak * ak + rc * rc) >> 15)
            dk = max(-100000, min(100000, (ek * (fk >> 5) >> 10) * 1000 // gk))
            pd[k] += dk
            tot += dk
        mean = tot // n
        for k in range(n):
            pd[k] -= mean
        # shrink the shared per-cell sigma with the mean slope
        rc = max(500, min(20000, _rss(rc, rl, 0, 0)))
        ak = min(20000, g * (sd // 100) // 10)
        fm = ak * ak // ((ak * ak + rc * rc) >> 15)
        if ak < rc:
            fm = 0
        post = (sd >> 5) * _sqrt1m(fm) >> 10
        self._sig_cell_ppm = max(_SIG_MIN, post, min(sd, m.ocv_err_uv * 1000 // g))

    def bled(self, k, mas):
        """Cell k lost mas mA.s through its balancing resistor: a charge the pack current never saw
        (it flows inside the pack). That cell's SoC falls by it; the pack mean by 1/n of it."""
        q = mas * 250 // (self.cap_nom * 9 // 10)  # ppm = mas * 1e6 / (cap_mah * 3600), no big ints
        if q <= 0:
            return
        d = self._cell_d_ppm
        m = q // self.n
        d[k] -= q
        for j in range(self.n):
            d[j] += m
        self._soc_ppm -= m

    @micropython.viper
    def _report(self):
        # cell_soc_pm[k] = the cell's SoC (pack average + its delta, clamped to 0..1e6 ppm) as per mille;
        # the pack SoC from the lowest and the highest cell in ppm, not from the rounded cells
        n = int(self.n)
        s = int(self._soc_ppm)
        d = ptr32(self._cell_d_ppm)
        out = ptr16(self.cell_soc_pm)
        w = int(_WSH)
        lo = 1000000
        hi = 0
        k = 0
        while k < n:
            c = s + ((d[k] << w) >> w)
            if c < 0:
                c = 0
            elif c > 1000000:
                c = 1000000
            out[k] = c // 1000
            if c < lo:
                lo = c
            if c > hi:
                hi = c
            k += 1
        # usable: discharge limited by the weakest cell, charge by the fullest; in ppm, so that every
        # per-mille value is reachable (set_soc inverts this exactly); lo * 1000 <= 1e9 stays a small int
        den = 1000000 - hi + lo
        self.soc_pm = lo * 1000 // den if den > 0 else 0
        sp = int(self._sig_ppm) // 100
        sd = int(self._sig_cell_ppm) // 100 if n > 1 else 0
        p = int(self._pend_ppm)
        self.sigma_pm = (int(_isqrt(sp * sp + sd * sd)) * 100 + (p if p >= 0 else 0 - p) + int(self._doubt_ppm)) // 1000


_sample = Estimator._sample
_step = Estimator._step
_report = Estimator._report
