"""T1: the `balance` command under real MicroPython in the App's 96 KB heap: answered (also when
refused), and pwfw.balance_cmd dropped again after every line, refused ones included."""
from tests.t1.test_app_mp import run


def test_balance_lines_answered_and_module_dropped(mp, tmp_path):
    out = run(mp, tmp_path, """
import sys
hal.keep_tx = True
for _ in range(30):
    app.step()
for line, ok in ((b"balance cells 3", 0), (b"balance cells 0xZZ", 0), (b"balance sometimes", 0),
                 (b"balance cells 0x5 30", 1), (b"balance", 1), (b"balance auto", 1)):
    text = None
    hal.tx = bytearray()
    gc.collect()
    hal.rx = bytearray(line + b"\\n")
    for _ in range(3):
        app.step()
    text = bytes(hal.tx)
    want = b'#ok {"cmd":"balance"' if ok else b'#err {"cmd":"balance"'
    assert want in text and b"internal error" not in text and b"out of memory" not in text, (line, text)
    assert "pwfw.balance_cmd" not in sys.modules, line
print("DONE")
""")
    assert "DONE" in out
