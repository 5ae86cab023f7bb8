"""The whole firmware application (pwfw.app.App) under the real MicroPython with a 96 KB heap, on
the register-level chip simulations, with a fake clock and serial port: it boots, samples, reports,
obeys commands — and its steady-state loop allocates (almost) nothing."""
import json
from pathlib import Path

# the rig and the chip simulations get this on top of the firmware's 96 KB (they measure ~56 KB here;
# the virtual board needs more for its process: packwatch.vboard.board.SIM_HEAP_K)
SIM_HEAP_K = 64

ROOT = Path(__file__).resolve().parents[2]

RIG = """
import json, gc, micropython
from hil.hal_fake import FakeHal

board = json.loads(BOARD)
hal = FakeHal(board, keep_tx=False)  # keep_tx: only where a test reads what was sent
hal.set(cells=[3300 + k for k in range(16)], i_ma=-20000)
gc.collect()
BASE = gc.mem_alloc()  # the test rig and the simulated chips: not the firmware's
from pwfw.app import App
app = App(hal)
"""


def run(mp, tmp_path, code):
    # as on a board: the firmware as .mpy (compiling sources on the device needs more heap than it has),
    # and the simulated chips compiled too, since they share this heap
    from packwatch.staging import stage
    from packwatch.vboard.board import sim_modules

    board = json.loads((ROOT / "boards" / "sim.json").read_text())
    stage(board, tmp_path)
    src = "BOARD = %r\n" % json.dumps(board) + RIG + code
    # 96 KB for the firmware + the rig and the chip simulations' allowance (as the virtual board does)
    return mp.run(src, heap="%dK" % (96 + SIM_HEAP_K), cwd=str(tmp_path), path=[tmp_path / "lib", sim_modules("x64")])


def test_app_boots_samples_and_answers_in_96k(mp, tmp_path):
    out = run(mp, tmp_path, """
# what was sent, kept a frame per block (one growing buffer would need a large free block in this
# fragmented heap: a failure of the rig, not of the firmware)
frames = []
def keep(buf, n):
    frames.append(bytes(buf[:n]))
hal.serial_write = keep
for _ in range(50):
    app.step()
hal.rx = bytearray(b"ping\\nset cell_ov_mv 9\\ninfo\\n")
for _ in range(20):
    app.step()
def sent(s):
    return any(s in f for f in frames)
assert sum(1 for f in frames if f.startswith(b"#rep ")) >= 2
assert sent(b'#ok {"cmd":"ping"') and sent(b'#err {"cmd":"set"') and sent(b'#ok {"cmd":"info"')
assert hal.relay_on is True
frames = None  # the rig's, not the firmware's
gc.collect()
print("FIRMWARE", gc.mem_alloc() - BASE, "RIG", BASE)
""")
    fw = int(out.split("FIRMWARE")[1].split()[0])
    rig = int(out.split("RIG")[1].split()[0])
    assert rig < SIM_HEAP_K * 1024  # the allowance the rig and the chip simulations get on top
    assert fw < 80 * 1024, fw  # the firmware's live heap (modules, buffers, state): >= 16 KB left to work in


def test_steady_state_loop_allocates_almost_nothing(mp, tmp_path):
    # a minute of 10 Hz sampling and 1 Hz reports (no state save falls due): nothing per sample and
    # nothing per line sent (the HAL gets the frame buffer and a length, not a slice)
    out = run(mp, tmp_path, """
for _ in range(400):
    app.step()
gc.collect()
m0 = micropython.mem_total()
n0 = hal.writes
for _ in range(600):
    app.step()
m1 = micropython.mem_total()
print("BYTES", m1 - m0, "WRITES", hal.writes - n0)
""")
    bytes_, writes = (int(x) for x in (out.split("BYTES")[1].split()[0], out.split("WRITES")[1].split()[0]))
    assert writes >= 60  # it did report (and every step sampled: 600 samples at 10 Hz, 60 reports)
    assert bytes_ == 0, (bytes_, writes)


def test_commands_module_is_loaded_per_line_and_dropped(mp, tmp_path):
    # commands are rare: the loop must not hold pwfw.commands' code between them (issue 16's heap);
    # each line still gets its answer, and loading and dropping it again and again leaves the live heap
    # where it was (the first load interns the module's names for good: qstrs are never freed)
    out = run(mp, tmp_path, """
import sys
hal.keep_tx = True
LINES = b"ping\\nset cell_ov_mv 9\\nbogus\\n"
hal.rx = bytearray(LINES)
for _ in range(20):
    app.step()
text = bytes(hal.tx)
assert b'#ok {"cmd":"ping"' in text and b'#err {"cmd":"set"' in text and b'#err {"cmd":"bogus"' in text
hal.keep_tx = False  # the kept output would grow the heap
hal.tx = bytearray()
hal.rx = bytearray()
text = None
h1 = n0 = held0 = 0  # globals made before the first count (a new one may grow this dict)
gc.collect()
h0 = gc.mem_alloc()
held0 = "pwfw.commands" in sys.modules
n0 = hal.writes
hal.rx = bytearray(LINES * 3)
for _ in range(10):
    app.step()
gc.collect()
h1 = gc.mem_alloc()
print("HELD", int(held0), int("pwfw.commands" in sys.modules), "GREW", h1 - h0, "WRITES", hal.writes - n0)
""")
    held = out.split("HELD")[1].split()[:2]
    grew = int(out.split("GREW")[1].split()[0])
    assert held == ["0", "0"], out  # not held after a command, nor after nine more lines
    assert int(out.split("WRITES")[1].split()[0]) >= 9  # the nine lines were answered
    assert grew == 0, grew
