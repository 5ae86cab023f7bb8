# The rarely used half of cell balancing: the `balance` command's mode changes and the restore of the
# persisted counters. Loaded when needed and dropped again (pwfw.balance stays small in the heap).
from pwfw.balance import AUTO, MANUAL, OFF
from pwfw.compat import ticks_add

MODES = ("off", "auto", "cells")


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
        if mask & (mask >> 1):
            raise ValueError("adjacent cells in mask: their balancing FETs share a sense input")
        if ones(mask) > bal.cfg.bal_max_cells:
            raise ValueError("more than bal_max_cells (%d) cells" % bal.cfg.bal_max_cells)
        if bal.mode != MANUAL:
            bal.prev_mode = bal.mode
        bal.want = mask
        bal.until_ms = ticks_add(now, minutes * 60000)
    bal.mode = mode
    bal.active = False
    bal.paused = False
    bal.next_ms = now  # decide at the next sample


def restore(bal, d):
    m = d.get("mode", AUTO)
    if m in (OFF, AUTO):
        bal.mode = m
    for key, arr in (("s", bal.bal_s), ("mah", bal.bled_mah)):
        v = d.get(key) or []
        if len(v) == bal.n:
            for k in range(bal.n):
                if type(v[k]) is int and v[k] >= 0:
                    arr[k] = v[k]


def drop():
    import sys

    import pwfw

    sys.modules.pop("pwfw.balance_cmd", None)
    try:
        delattr(pwfw, "balance_cmd")
    except (AttributeError, KeyError):
        pass
