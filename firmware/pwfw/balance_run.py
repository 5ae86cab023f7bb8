# Cell balancing, the decision (docs/configuration.md "Balancing"): loaded by Balancer.run at the end
# of each decision window (every bal_s seconds) and dropped again (pwfw.compat.call), so the loop's heap
# holds only the state (pwfw.balance). Few functions and names on purpose: each name is a qstr for good
# once loaded, and the unix port's qstr pool doubles past ~1260 of them (pwfw/compat.py,
# docs/architecture.md Memory). While loops only.
from pwfw.balance import AUTO, MANUAL, OFF
from array import array

from pwfw.compat import const, ticks_add, ticks_diff

_MAS_MAH = const(3600)
# Balancer.st: the scalar state in one array (no attribute names, no instance dict in the loop's heap);
# the same indices in pwfw.balance, balance_run, balance_cmd and app (tests/t0/test_balance.py holds
# the copies to pwfw.balance's)
_MODE = const(0)  # OFF / AUTO / MANUAL
_PREV = const(1)  # the mode a manual balance falls back to
_MASK = const(2)  # cells bleeding now (bit k = cell k+1): `bal` in `rep`
_WANT = const(3)  # the manual mask (`balance cells`)
_UNTIL = const(4)  # ticks_ms the manual balance ends
_WHY = const(5)  # the last decision's reason: an index of pwfw.balance_cmd.WHY
_ACTIVE = const(6)  # auto: between start and stop delta (hysteresis), 0/1
_PAUSED = const(7)  # in the decision's window (FETs off, samples summed), 0/1
_NEXT = const(8)  # ticks_ms App calls run next
_LAST = const(9)  # ticks_ms the mask was written
_FETS = const(10)  # the FETs balancing allows (pwfw.app): 3, or 2 while the charge is stopped
_DUE = const(11)  # ticks_ms the window opens, or (in it) the decision is made
_NWIN = const(12)  # samples summed in the window
_GOAL = const(13)  # 1 while a cell has charge left to bleed (Balancer.goal_mah)
_OFF = const(14)  # ticks_ms the FETs went off for the window (what bled: _LAST to _OFF)
_BLED = const(15)  # the mask that bled from _LAST to _OFF
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
    st = bal.st
    st[_MODE] = st[_PREV] = AUTO
    st[_NEXT] = st[_LAST] = st[_DUE] = st[_OFF] = now
    st[_FETS] = 3
    bal.bal_s = array("i", [0] * n_cells)  # seconds each cell has been bled
    bal.bled_mah = array("i", [0] * n_cells)  # charge bled per cell (mAh) and the rest in mA.s
    bal._rem_mas = array("i", [0] * n_cells)
    bal.goal_mah = array("i", [0] * n_cells)  # charge each cell has still to bleed (auto)
    bal.q = array("i", [0, 0, now, 0, 0])  # Balancer._count: mAh, mA.ms, its last ticks_ms, at the top 0/1, dt
    bal.x_mah = array("i", [-1] * n_cells)  # q[0] at each cell's first reading at bal_start_mv
    bal.x_bled = array("i", [0] * n_cells)  # its bled_mah then


def run(bal, now, pack, est):
    """The end of a window: count what the last mask bled, then choose and write the next mask on the
    window's mean readings (Balancer.win_mv / st[_NWIN]; this sample's if the window has none)."""
    st = bal.st
    n = bal.n
    cells = pack.cells
    if st[_NWIN]:
        cells = bal.win_mv
        k = 0
        while k < n:
            cells[k] = (cells[k] + st[_NWIN] // 2) // st[_NWIN]
            k += 1
    st[_PAUSED] = 0
    st[_NWIN] = 0
    dt = ticks_diff(st[_OFF], st[_LAST])
    m = st[_BLED]
    k = 0
    while m and dt > 0 and k < n:  # what the last mask bled (mA for dt ms)
        if not m >> k & 1:
            k += 1
            continue
        # a run of adjacent bled cells is one loop (TI E2E 1505209): their voltages over both input
        # resistors and each switch, I = sum(V) / (bal_r_ohm + (len - 1) * bal_rsw_ohm); alone I = V / R
        j = k
        v = 0
        while j < n and m >> j & 1:
            v += cells[j]
            j += 1
        mas = v * dt // ((bal.cfg.bal_r_ohm + (j - k - 1) * bal.cfg.bal_rsw_ohm) * 1000)
        while k < j:
            bal.bal_s[k] += (dt + 500) // 1000
            if est is not None:
                est.bled(k, mas)
            q = bal._rem_mas[k] + mas
            bal.bled_mah[k] += q // _MAS_MAH
            g = bal.goal_mah[k] - q // _MAS_MAH
            bal.goal_mah[k] = g if g > 0 else 0
            bal._rem_mas[k] = q % _MAS_MAH
            k += 1
    try:
        die = pack.afe.read_int_dk() - 2732  # the AFE's die: its balancing FETs heat it
    except (OSError, ValueError):
        die = None
    # the direction from the accumulator's mean, not the instant's reading (a 100 Hz ripple's trough
    # read as a discharge held the goals from the last top of charge)
    m = choose(bal, now, cells, pack.i_avg_ma, pack.temps, die)
    st[_BLED] = 0
    hi = 0
    k = 0
    while k < n:
        hi = cells[k] if cells[k] > hi else hi
        k += 1
    if st[_FETS] != 3 and hi < bal.cfg.cell_ov_mv - bal.cfg.chg_stop_dmv - bal.cfg.cell_ov_hyst_mv:
        st[_FETS] = 3  # the charge may go on (the hysteresis, on the window's mean)
    st[_LAST] = now
    st[_DUE] = ticks_add(now, bal.cfg.bal_s * 1000 - min(3000, bal.cfg.bal_s * 100))
    if not (m or st[_MASK]):
        return  # the window turned the FETs off already (a command's decision may not have)
    try:
        pack.afe.cb_write(pack.afe.input_mask(m))
        st[_MASK] = m
    except (OSError, ValueError):
        st[_MASK] = 0  # not known to be on: count nothing (the next decision writes again)


def choose(bal, now, cells, i_ma, temps, die_dc):
    """The mask for the next bal_s seconds, and bal.st[_WHY] (the reason, an index of balance_cmd.WHY)."""
    c = bal.cfg
    st = bal.st
    if st[_MODE] == OFF:
        st[_WHY] = _W_OFF
        return 0
    hot = die_dc is not None and die_dc > c.bal_die_dc
    k = 0
    while k < len(temps):
        if temps[k] is not None and temps[k] > c.bal_tmax_dc:
            hot = True
        k += 1
    if hot:
        st[_WHY] = _W_HOT
        st[_ACTIVE] = 0
        return 0
    lo = 32767
    hi = -32768
    j = 0
    k = 0
    while k < bal.n:
        if cells[k] < lo:
            lo = cells[k]
            j = k
        hi = cells[k] if cells[k] > hi else hi
        k += 1
    m = 0
    if st[_MODE] == MANUAL:
        if ticks_diff(now, st[_UNTIL]) >= 0:
            st[_MODE] = st[_PREV]
            st[_WHY] = _W_TIMEOUT
            return choose(bal, now, cells, i_ma, temps, die_dc)
        st[_WHY] = _W_MANUAL
        k = 0
        while k < bal.n:  # never below the lowest cell, even by hand
            if st[_WANT] >> k & 1 and cells[k] > lo:
                m |= 1 << k
            k += 1
        return m
    on = st[_ACTIVE]
    if i_ma < -c.dir_ma and not c.bal_dsg:
        st[_WHY] = _W_DISCHARGING  # what is left to bleed waits for the charge or the rest
        return 0
    g = bal.goal_mah
    if hi >= c.bal_start_mv:  # the top of charge: the voltages show which cells are high, and by how much
        if hi - lo <= c.bal_stop_dmv or (not on and hi - lo < c.bal_start_dmv):
            st[_WHY] = _W_BALANCED
            st[_ACTIVE] = 0
            st[_GOAL] = 0
            k = 0
            while k < bal.n:
                g[k] = 0
                k += 1
            return 0
        st[_ACTIVE] = 1
        # each cell above lowest + stop delta: 5e-5 of the capacity per mV above that (LFP's knee,
        # 0.99 -> 1.0 SoC: ~180 mV per 1 %, so never more than it has; a cell still on the plateau shows
        # less than it lacks, and the next top of charge measures again), the others nothing. Not the
        # estimator's per-cell SoC: in T2 it put a cell 15 % above the lowest where the plant had 1.5 %
        # Or, if more, the charge into the pack since the cell first read bal_start_mv in this charge
        # until the lowest did (or until now: the lowest is further behind), less what it bled since:
        # between two crossings in the knee (under charge ~98.5 % SoC) the same current filled both,
        # so it is what the first has over the second (Balancer._count)
        x = bal.x_mah
        ref = x[j] if x[j] >= 0 else bal.q[0]
        k = 0
        while k < bal.n:
            v = cells[k] - lo - c.bal_stop_dmv
            g[k] = max(1, v * (c.capacity_mah // 100) // 200) if v > 0 else 0  # >= 1 mAh: on to the stop delta
            if v > 0 and x[k] >= 0:
                g[k] = max(g[k], ref - x[k] - (bal.bled_mah[k] - bal.x_bled[k]))
            k += 1
    # at most bal_max_cells: first the cells that bled last and have charge left (held until it is
    # gone: re-picking the most left each time moved the mask between alike cells), then those with
    # the most left; none adjacent, or with bal_adjacent pairs but never three in a row
    held = st[_BLED]
    n = 0
    p = 0
    while p < 2:
        while n < c.bal_max_cells:
            if c.bal_adjacent:
                near = m | (m << 1 & m << 2) | (m >> 1 & m >> 2) | (m << 1 & m >> 1)
            else:
                near = m | m >> 1 | m << 1
            best = -1
            q = 0
            k = 0
            while k < bal.n:
                if g[k] > q and not near >> k & 1 and (p or held >> k & 1):
                    best = k
                    q = g[k]
                k += 1
            if best < 0:
                break
            m |= 1 << best
            n += 1
        p += 1
    st[_GOAL] = 1 if m else 0
    st[_WHY] = _W_AUTO if m else (_W_LOW if hi < c.bal_start_mv else _W_BALANCED)
    return m
