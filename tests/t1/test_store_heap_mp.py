"""T1: a state save fits where the start-up leaves the heap, under the real MicroPython with the App's
96 KB heap (the rig of test_app_mp.py). The save after boot (and a `save` line in the first samples)
runs while the heap is at its tightest and most fragmented; it needs the record code (pwfw.store_io)
and the balancer's state (pwfw.balance_cmd), not the key table (pwfw.config_keys, ~10 KB here): a
save that did not fit flagged `store` though nothing was lost (tests/t2's power-loss test, under load)."""
from tests.t1.test_app_mp import run

SAVE = """
import sys
for _ in range(20):
    app.step()
w0 = app.store.writes
blocks = [None] * 64  # made before the count: the list itself does not grow
i = 0
n = 32768
gc.collect()
while i < 64 and n >= 16:  # the heap filled down to LEFT free, the largest holes first
    f = gc.mem_free()
    if f <= LEFT:
        break
    try:
        blocks[i] = bytearray(min(n, f - LEFT))
        i += 1
    except MemoryError:
        n //= 2
app.save()
ok = app.store.writes - w0
held = int("pwfw.config_keys" in sys.modules)
blocks = None
gc.collect()
print("SAVED", ok, "HELD", held, "FAULT", app.pack.fault & FSTORE, "BLOCKS", i)
"""


def test_a_state_save_fits_without_the_key_table(mp, tmp_path):
    from pwfw.pack import F_STORE

    # 16 KB left, as fragmented as filling it leaves it: the T1 guard's room to work in (test_app_mp:
    # < 80 KB of 96 KB). Measured here: a save needs 13-14 KB so; with the key table loaded for it,
    # 18-20 KB (and the save failed with a MemoryError, flagged `store`)
    out = run(mp, tmp_path, "LEFT = %d\nFSTORE = %d\n" % (16 * 1024, F_STORE) + SAVE)
    v = {ln.split()[0]: ln.split()[1:] for ln in out.splitlines() if ln.startswith("SAVED")}
    assert v["SAVED"][:5] == ["1", "HELD", "0", "FAULT", "0"], out
    assert int(v["SAVED"][6]) < 64, out  # the heap was filled down to LEFT
