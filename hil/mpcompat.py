# What the simulated chips and hal_sim need to run unchanged on CPython (tests, tools) and inside the
# virtual board's MicroPython: `@micropython.native` / `@micropython.viper` and viper's casts are
# compiler builtins there, plain no-ops here. (The firmware has its own, pwfw/compat.py: it ships to
# boards without hil/.)
import sys

if sys.implementation.name == "micropython":
    import micropython  # noqa: F401
else:
    class micropython:  # noqa: N801
        @staticmethod
        def native(f):
            return f

        viper = native


# viper's casts: on MicroPython the compiler takes ptr8(...) / uint(...) in a viper function as casts
# whatever these module names are bound to; on CPython indexing a bytearray or array does the same.
def ptr8(b):
    return b


ptr16 = ptr32 = ptr8


def uint(x):
    return x & 0xFFFFFFFF
