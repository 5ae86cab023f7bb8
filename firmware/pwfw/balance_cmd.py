# The rarely used half of cell balancing: the `balance` command's mode changes and the restore of the
# persisted counters. Loaded when needed and dropped again (pwfw.balance stays small in the heap).
from pwfw.balance import AUTO, MANUAL, OFF
from pwfw.compat import const, ticks_add

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

MODES = ("off", "auto", "cells")
# Balancer.why: the last decision's reason, by index (pwfw.balance_run's _W_* constants)
WHY = ("idle", "off", "hot", "discharging", "low", "balanced", "auto", "manual", "timeout")


def ones(mask):
    n = 0
    while mask:
        n += mask & 1
        mask >>= 1
    return n


def set_mode(bal, mode, now, mask=0, minutes=60):
    if mode == MANUAL:
        if mask >> bal.n:
            raise ValueError("mask names cells beyond %d" % bal.n)
        if mask & (mask >> 1) and not bal.cfg.bal_adjacent:
            raise ValueError("adjacent cells in mask: their balancing FETs share a sense input (bal_adjacent 0)")
        if mask & (mask >> 1) & (mask >> 2):
            raise ValueError("three adjacent cells in mask: at most pairs")
        if ones(mask) > bal.cfg.bal_max_cells:
            raise ValueError("more than bal_max_cells (%d) cells" % bal.cfg.bal_max_cells)
        if bal.st[_MODE] != MANUAL:
            bal.st[_PREV] = bal.st[_MODE]
        bal.st[_WANT] = mask
        bal.st[_UNTIL] = ticks_add(now, minutes * 60000)
    st = bal.st
    st[_MODE] = mode
    st[_ACTIVE] = 0
    if not st[_PAUSED]:  # decide at the next sample, on its reading (what bled until now is counted)
        st[_PAUSED] = 1
        st[_NWIN] = 0
        st[_OFF] = now
        st[_BLED] = st[_MASK]
    st[_DUE] = st[_NEXT] = now


def _int(s, lo, hi, what):
    digits = s[1:] if s[:1] == "-" else s
    if not digits or not digits.isdigit():
        raise ValueError("not an integer: " + s)
    v = int(s)
    if v < lo or v > hi:
        raise ValueError("%s out of range %d..%d" % (what, lo, hi))
    return v


def command(app, args):
    """`balance` (state), `balance auto|off`, `balance cells MASK [minutes]` (docs/protocol.md). A bad
    argument raises ValueError (pwfw.commands answers it); compat.call drops this module in any case."""
    bal = app.bal
    now = app.hal.ticks_ms()
    if args == ["auto"]:
        set_mode(bal, AUTO, now)
    elif args == ["off"]:
        set_mode(bal, OFF, now)
    elif args[:1] == ["cells"] and len(args) in (2, 3):
        m = args[1]
        if m[:2] in ("0x", "0X"):
            try:
                mask = int(m[2:], 16)
            except ValueError:
                raise ValueError("mask must be an integer or 0x-hex, got %s" % m) from None
        else:
            mask = _int(m, 0, 0xFFFF, "mask")
        minutes = _int(args[2], 1, 1440, "minutes") if len(args) == 3 else 60
        set_mode(bal, MANUAL, now, mask, minutes)
    elif args:
        raise ValueError("usage: balance [auto|off|cells MASK [minutes]]")
    if args:
        app.save()
    o = app.out
    o.begin(b"ok")
    o.str(b"cmd", "balance")
    o.str(b"mode", MODES[bal.st[_MODE]])
    o.int(b"bal", bal.st[_MASK])
    o.str(b"why", WHY[bal.st[_WHY]])
    o.end()


def state(bal):
    """What the store keeps (App.save): the mode to come back in (never manual) and the counters."""
    return {"mode": bal.st[_MODE] if bal.st[_MODE] != MANUAL else bal.st[_PREV], "s": list(bal.bal_s),
            "mah": list(bal.bled_mah), "goal": list(bal.goal_mah)}


def restore(bal, d):
    m = d.get("mode", AUTO)
    if m in (OFF, AUTO):
        bal.st[_MODE] = m
    for key, arr in (("s", bal.bal_s), ("mah", bal.bled_mah), ("goal", bal.goal_mah)):
        v = d.get(key) or []
        if len(v) == bal.n:
            for k in range(bal.n):
                if type(v[k]) is int and v[k] >= 0:
                    arr[k] = v[k]
    for k in range(bal.n):  # charge left to bleed: the policy goes on with it after a power loss
        if bal.goal_mah[k]:
            bal.st[_GOAL] = 1


def drop():
    from pwfw.compat import unload

    unload("balance_cmd")
