"""T1: the same frame writer under real MicroPython reproduces every valid vector byte for byte."""
import json

from tests.support import VECTORS

V = json.loads(VECTORS.read_text())

SNIPPET = r"""
import json
from pwfw.protocol import FrameWriter, LineReader
class Sink:
    def __init__(self): self.data = bytearray()
    def write(self, b, n): self.data += bytes(b[:n])
V = json.load(open('docs/protocol_vectors.json'))
from array import array
n = 0
for f in V['frames'] + [f for f in V['frames'] if f['valid']]:  # the second time with int arrays
    if not f['valid']:
        continue
    arrays = n >= len([g for g in V['frames'] if g['valid']])
    s = Sink(); w = FrameWriter(s); w.begin(f['topic'].encode())
    for k in f['order']:
        v = f['fields'][k]
        if isinstance(v, list): w.ints(k.encode(), array('i', v) if arrays and None not in v else v)
        elif isinstance(v, str) or (v is None and k in ('cmd', 'error', 'name')): w.str(k.encode(), v)
        else: w.int(k.encode(), v)
    w.end()
    assert s.data.decode() == f['line'], (s.data, f['line'])
    n += 1
r = LineReader()
for b in b'\x00junk\n' + b'y' * 300 + b'\nrate 500\n':
    if r.feed(b):
        last = r.take()
assert last == ('rate 500', 0), last
# a steady-state report must not grow the heap beyond the CRC (an int) on 64-bit
import gc, micropython
s = Sink(); s.write = lambda b, n: None
w = FrameWriter(s)
from array import array
cells = array('h', [3300] * 16)
def rep(k):
    w.begin(b'rep')
    for i in range(k):
        w.int(b'seq', 123456); w.ints(b'cell_mv', cells); w.int(b'i_ma', -12345)
    w.end()
def per_report(k):
    rep(k); gc.collect()
    a0 = micropython.mem_total()
    for i in range(50):
        rep(k)
    return (micropython.mem_total() - a0) // 50
small, big = per_report(1), per_report(8)
# nothing per frame, per field or per digit (the stream gets the buffer and a length, not a slice)
assert small == big == 0, (small, big)
print('OK', n, small)
"""


def test_frame_writer_matches_vectors_under_micropython(mp):
    out = mp.run(SNIPPET)
    assert out.startswith("OK %d" % (2 * sum(1 for f in V["frames"] if f["valid"])))
