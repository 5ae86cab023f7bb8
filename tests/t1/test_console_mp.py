"""T1: the console's line reader against the `line_input` vectors, and `soc N` read back exactly for
every N, under the real MicroPython (docs/protocol.md)."""

LINES = r"""
import json
from pwfw.protocol import LineReader
V = json.load(open('docs/protocol_vectors.json'))
NAMES = {LineReader.TOO_LONG: 'line too long', LineReader.BAD_BYTES: 'bad bytes'}
def read(data):
    r = LineReader()
    out = []
    for b in data:
        if r.feed(b):
            text, err = r.take()
            out.append([text, None if not err else NAMES[LineReader.TOO_LONG if err & LineReader.TOO_LONG else LineReader.BAD_BYTES]])
    return out
n = 0
every, want = bytearray(), []
for v in V['line_input']:
    data = bytes([ord(c) for c in v['bytes']])  # code points < 256: the bytes themselves
    got = read(data)
    assert got == v['lines'], (v['why'], got)
    every += data
    want += v['lines']
    n += 1
assert read(every) == want
print('OK', n)
"""


def test_line_reader_vectors_under_micropython(mp):
    import json
    from pathlib import Path

    n = len(json.loads((Path(__file__).resolve().parents[2] / "docs" / "protocol_vectors.json").read_text())["line_input"])
    assert mp.run(LINES).startswith("OK %d" % n)


SOC = r"""
import json
from pwfw.soc import Estimator, load_model
def deltas(n):
    d = [(k * 7919) % 23000 - 11000 for k in range(n)]
    m = sum(d) // n
    return [x - m for x in d]
for chem, n in (('lfp', 16), ('nmc', 14)):
    with open('firmware/pwfw/models/%s.json' % chem) as f:
        e = Estimator(load_model(json.load(f)), n, 100000)
    for cd in ([0] * n, deltas(n)):
        st = e.state()
        st['cd'] = cd
        st['cp'] = [0] * n
        e.restore(st)
        bad = []
        for pm in range(1001):
            e.set_soc(pm)
            if e.soc_pm != pm:
                bad.append((pm, e.soc_pm))
        assert not bad, (chem, cd[:3], bad[:5], len(bad))
print('OK')
"""


def test_set_soc_reads_back_every_value_under_micropython(mp):
    assert "OK" in mp.run(SOC)
