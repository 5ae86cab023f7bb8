"""The virtual board: the unmodified firmware on real MicroPython (unix port), or on an emulated
RP2040 (rp2040.py), behind a pseudo-terminal, in lockstep with the simulated pack (hil/).

    board.py     the board process and its flash folder (the unix port; rp2040.py replaces it)
    relay.py     the pty relay: the serial port host tools open, flow control, unplug/replug
    lockstep.py  virtual time, the plant pipe, speculation, scenario events, truth rows, power cuts
    runner.py    VirtualBoard: the three on one loop thread

Host-side (CPython, POSIX): the simulated hardware itself, and hal_sim, which runs inside the
MicroPython process, live in hil/.
"""
from .board import (FRIENDLY_BANNER, HIL_DIR, RAW_BANNER, REPO, SIM_HEAP_K, SOFT_REBOOT, board_file_for,
                    heap_k, install_firmware)
from .runner import VirtualBoard

__all__ = ["VirtualBoard", "board_file_for", "install_firmware", "heap_k", "HIL_DIR", "REPO", "SIM_HEAP_K",
           "RAW_BANNER", "FRIENDLY_BANNER", "SOFT_REBOOT"]
