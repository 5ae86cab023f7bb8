# One place for what differs between MicroPython and CPython, so the rest of pwfw runs on both.
import sys

MICROPYTHON = sys.implementation.name == "micropython"


def unload(*names):
    """Forget modules pwfw.<name> (sys.modules and the package's attribute) so their code can be
    collected: the pattern for code loaded on demand (docs/architecture.md, Memory)."""
    import pwfw

    for name in names:
        sys.modules.pop("pwfw." + name, None)
        try:
            delattr(pwfw, name)
        except (AttributeError, KeyError, TypeError):  # not imported (MicroPython raises KeyError)
            pass


def call(mod, fn, *args):
    """pwfw.<mod>.<fn>(*args), the module loaded for the call and (on MicroPython) dropped after it,
    unless a caller holds it loaded already (pwfw.commands' `set`: one load for all its checks).
    A MemoryError while loading it propagates: the caller answers or flags it."""
    held = "pwfw." + mod in sys.modules
    m = __import__("pwfw." + mod, None, None, (fn,))
    try:
        return getattr(m, fn)(*args)
    finally:
        m = None
        if MICROPYTHON and not held:
            unload(mod)


if MICROPYTHON:
    import micropython  # noqa: F401  (`@micropython.native` is compiler syntax; imported for symmetry)
    from micropython import const  # noqa: F401
    from time import ticks_add, ticks_diff, ticks_ms, sleep_ms  # noqa: F401
else:
    import time as _time

    def const(x):
        return x

    _PERIOD = const(1 << 30)  # const: folded by mpy-cross, so no global (an interned name) on the board
    _HALF = const(1 << 29)

    class micropython:  # noqa: N801
        """Stand-in so `@micropython.native` hot paths run unchanged (as bytecode) on CPython."""

        @staticmethod
        def native(f):
            return f

        viper = native

    def ptr8(b):
        """viper's pointer cast (a builtin of the viper compiler), as the identity: indexing a
        bytearray does the same on CPython."""
        return b

    ptr16 = ptr32 = ptr8

    def ticks_ms():
        return int(_time.monotonic() * 1000) & (_PERIOD - 1)

    def ticks_add(t, delta):
        return (t + delta) & (_PERIOD - 1)

    def ticks_diff(a, b):
        return ((a - b + _HALF) & (_PERIOD - 1)) - _HALF

    def sleep_ms(ms):
        _time.sleep(ms / 1000)
