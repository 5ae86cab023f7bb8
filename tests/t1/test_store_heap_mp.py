"""T1: a state save does not load the key table, under the real MicroPython with the App's 96 KB heap
(the rig of test_app_mp.py). The save after boot (and a `save` line in the first samples) runs while
the heap is at its tightest and most fragmented; it needs the record code (pwfw.store_io) and the
balancer's state (pwfw.balance_cmd), not the key table (pwfw.config_keys, ~10 KB on this port): a save
that did not fit flagged `store` though nothing was lost (tests/t2's power-loss test, under load).
Bytes allocated (micropython.mem_total) do not depend on how fragmented the heap is."""
from tests.t1.test_app_mp import run

SAVE = """
import sys
from pwfw.compat import unload
for _ in range(20):
    app.step()
w0 = app.store.writes
gc.collect()
m0 = micropython.mem_total()
import pwfw.config_keys
m1 = micropython.mem_total()
unload("config_keys")
gc.collect()
m2 = micropython.mem_total()
app.save()
m3 = micropython.mem_total()
print("SAVED", app.store.writes - w0, "FAULT", app.pack.fault & FSTORE, "KEYS", m1 - m0, "SAVE", m3 - m2)
"""


def test_a_state_save_allocates_less_than_the_key_table(mp, tmp_path):
    from pwfw.pack import F_STORE

    out = run(mp, tmp_path, "FSTORE = %d\n" % F_STORE + SAVE)
    v = {ln.split()[0]: ln.split()[1:] for ln in out.splitlines() if ln.startswith("SAVED")}["SAVED"]
    assert v[:3] == ["1", "FAULT", "0"], out  # the record was written, nothing flagged
    keys, save = int(v[4]), int(v[6])
    # the whole save (record, JSON, store_io, balance_cmd: ~11.6 KB here) takes less than the key table
    # and half of it again; loading the table for it made it the table + the rest (23.8 KB before)
    assert save < keys + keys // 2, out
