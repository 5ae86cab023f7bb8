"""packwatch cmd's Link over a port that delivers bytes as they come (a loaded host, a USB CDC port):
MicroPython's friendly-REPL prompt `>>> ` split over reads is still the REPL (a flaky T2 console test
under load: one byte per read left `cmd` saying "no packwatch frame" instead of "at the REPL")."""
import pytest

from packwatch.cmd import Link, _no_reply

# what a board prints after Ctrl-C stops the firmware (MicroPython's KeyboardInterrupt and prompt)
AFTER_CTRL_C = b'Traceback (most recent call last):\r\n  File "main.py", line 3, in <module>\r\nKeyboardInterrupt: \r\n>>> '


class ChunkedPort:
    def __init__(self, data, n):
        self.chunks = [data[k:k + n] for k in range(0, len(data), n)]

    @property
    def in_waiting(self):
        return len(self.chunks[0]) if self.chunks else 0

    def read(self, size):
        if not self.chunks:
            return b""
        c = self.chunks.pop(0)
        assert len(c) <= size
        return c


@pytest.mark.parametrize("n", [1, 2, 3, 5, len(AFTER_CTRL_C)])
def test_a_repl_prompt_split_over_reads_is_the_repl(n):
    link = Link(ChunkedPort(AFTER_CTRL_C, n), "/dev/ttyACM0")
    while link.ser.chunks:
        link.pump()
    assert link.repl_seen and link.received == len(AFTER_CTRL_C)
    assert "MicroPython REPL" in _no_reply(link, "'ping'", 2)


def test_bytes_without_a_prompt_are_not_the_repl():
    link = Link(ChunkedPort(b"> >> >\r\n>>\x00> ", 1), "/dev/ttyACM0")
    while link.ser.chunks:
        link.pump()
    assert not link.repl_seen
    assert "hold no packwatch frame" in _no_reply(link, "'ping'", 2)
