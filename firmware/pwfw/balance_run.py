# Cell balancing, the decision (docs/configuration.md "Balancing"): loaded by Balancer.run every bal_s
# seconds and dropped again (pwfw.compat.call), so the loop's heap holds only the state (pwfw.balance).
# Few functions and names on purpose: each name is a qstr for good once loaded, and the unix port's
# qstr pool doubles past ~1260 of them (pwfw/compat.py, docs/architecture.md Memory). While loops only.
from pwfw.balance import AUTO, MANUAL, OFF
from array import array

from pwfw.compat import const, ticks_add, ticks_diff

_MAS_MAH = const(3600)
# Balancer.st: the scalar state in one array (no attribute names, no instance dict in the loop's heap);
# the same indices in pwfw.balance, balance_run, balance_cmd and app
_MODE = const(0)  # OFF / AUTO / MANUAL
_PREV = const(1)  # the mode a manual balance falls back to
_MASK = const(2)  # cells bleeding now (bit k = cell k+1): `bal` in `rep`
_WANT = const(3)  # the manual mask (`balance cells`)
_UNTIL = const(4)  # ticks_ms the manual balance ends
_WHY = const(5)  # the last decision's reason: an index of pwfw.balance_cmd.WHY
_ACTIVE = const(6)  # auto: between start and stop delta (hysteresis), 0/1
_PAUSED = const(7)  # FETs off for the decision's sample, 0/1
_NEXT = const(8)  # ticks_ms of the next decision
_LAST = const(9)  # ticks_ms of the last one
# bal.st[_WHY]: the index in pwfw.balance_cmd.WHY (ints, not strings: no qstrs in the loop's heap)
_W_OFF = const(1)
_W_HOT = const(2)
_W_DISCHARGING = const(3)
_W_LOW = const(4)
_W_BALANCED = const(5)
_W_AUTO = const(6)
_W_MANUAL = const(7)
_W_TIMEOUT = const(8)


def init(bal, cfg, n_cells, now):
    bal.cfg = cfg
    bal.n = n_cells
    bal.st = array("i", [0] * 10)
    bal.st[_MODE] = bal.st[_PREV] = AUTO
    bal.st[_NEXT] = bal.st[_LAST] = now
    bal.bal_s = array("i", [0] * n_cells)  # seconds each cell has been bled
    bal.bled_mah = array("i", [0] * n_cells)  # charge bled per cell (mAh) and the rest in mA.s
    bal._rem_mas = array("i", [0] * n_cells)


def run(bal, now, pack, est):
    """One decision: count what the last mask bled, then pause or choose the next mask."""
    cells = pack.cells
    dt = ticks_diff(now, bal.st[_LAST])
    bal.st[_LAST] = now
    k = 0
    while bal.st[_MASK] and dt > 0 and k < bal.n:  # what the last mask bled: I = V / R (mA) for dt ms
        if bal.st[_MASK] >> k & 1:
            bal.bal_s[k] += (dt + 500) // 1000
            mas = cells[k] * dt // (bal.cfg.bal_r_ohm * 1000)
            if est is not None:
                est.bled(k, mas)
            q = bal._rem_mas[k] + mas
            bal.bled_mah[k] += q // _MAS_MAH
            bal._rem_mas[k] = q % _MAS_MAH
        k += 1
    if bal.st[_MASK] and not bal.st[_PAUSED]:  # FETs off for one sample: decide on a clean reading
        m = 0
        bal.st[_PAUSED] = 1
        bal.st[_NEXT] = ticks_add(now, bal.cfg.sample_ms)
    else:
        bal.st[_PAUSED] = 0
        bal.st[_NEXT] = ticks_add(now, bal.cfg.bal_s * 1000)
        try:
            die = pack.afe.read_int_dk() - 2732  # the AFE's die: its balancing FETs heat it
        except (OSError, ValueError):
            die = None
        m = choose(bal, now, cells, pack.i_ma, pack.temps, die)
        if not m and not bal.st[_MASK]:
            return  # a non-zero mask is written every decision: a part that reset has forgotten it
    try:
        pack.afe.cb_write(pack.afe.input_mask(m))
        bal.st[_MASK] = m
    except (OSError, ValueError):
        bal.st[_MASK] = 0  # not known to be on: count nothing (the next decision writes again)


def choose(bal, now, cells, i_ma, temps, die_dc):
    """The mask for the next bal_s seconds, and bal.st[_WHY] (the reason, an index of balance_cmd.WHY)."""
    c = bal.cfg
    if bal.st[_MODE] == OFF:
        bal.st[_WHY] = _W_OFF
        return 0
    hot = die_dc is not None and die_dc > c.bal_die_dc
    k = 0
    while k < len(temps):
        if temps[k] is not None and temps[k] > c.bal_tmax_dc:
            hot = True
        k += 1
    if hot:
        bal.st[_WHY] = _W_HOT
        bal.st[_ACTIVE] = 0
        return 0
    lo = 32767
    hi = -32768
    k = 0
    while k < bal.n:
        lo = cells[k] if cells[k] < lo else lo
        hi = cells[k] if cells[k] > hi else hi
        k += 1
    m = 0
    if bal.st[_MODE] == MANUAL:
        if ticks_diff(now, bal.st[_UNTIL]) >= 0:
            bal.st[_MODE] = bal.st[_PREV]
            bal.st[_WHY] = _W_TIMEOUT
            return choose(bal, now, cells, i_ma, temps, die_dc)
        bal.st[_WHY] = _W_MANUAL
        k = 0
        while k < bal.n:  # never below the lowest cell, even by hand
            if bal.st[_WANT] >> k & 1 and cells[k] > lo:
                m |= 1 << k
            k += 1
        return m
    on = bal.st[_ACTIVE]
    bal.st[_ACTIVE] = 0
    if i_ma < -c.dir_ma and not c.bal_dsg:
        bal.st[_WHY] = _W_DISCHARGING
        return 0
    if hi < c.bal_start_mv:
        bal.st[_WHY] = _W_LOW
        return 0
    if hi - lo <= c.bal_stop_dmv or (not on and hi - lo < c.bal_start_dmv):
        bal.st[_WHY] = _W_BALANCED
        return 0
    bal.st[_ACTIVE] = 1
    bal.st[_WHY] = _W_AUTO
    # the highest cells above lowest + stop delta, no two adjacent, at most bal_max_cells
    lo += c.bal_stop_dmv
    n = 0
    while n < c.bal_max_cells:
        near = m | m >> 1 | m << 1
        best = -1
        hi = lo
        k = 0
        while k < bal.n:
            if cells[k] > hi and not near >> k & 1:
                best = k
                hi = cells[k]
            k += 1
        if best < 0:
            break
        m |= 1 << best
        n += 1
    return m
