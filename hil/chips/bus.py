# A simulated I2C bus with the machine.I2C methods the drivers use, and fault injection.
# A device attached at an address has read(reg, buf) and write(reg, data); reg is None for the
# register-less readfrom_into/writeto (the device then uses its own register pointer).
_ENODEV = 19  # what machine.I2C raises when the address is not acknowledged
_ETIMEDOUT = 110  # what it raises when a slave stretches the clock past timeout_us
_KINDS = {"nack": _ENODEV, "timeout": _ETIMEDOUT}

from hil.mpcompat import micropython  # noqa: E402


class SimI2C:
    def __init__(self, freq=400000):
        self.freq = freq
        self._devs = {}
        self._fail_n = {}
        self._fail_err = {}
        self._pending = 0  # total injected failures left: a fast path for the common case
        self.transactions = 0
        self.clocks = 0  # SCL clocks used (9 a byte incl. ACK, +1 start/stop), for bus-time budgets

    def attach(self, addr, dev):
        self._devs[addr] = dev

    def detach(self, addr):
        self._devs.pop(addr, None)

    def fail_next(self, addr, n, kind="nack"):
        """The next n transactions to addr fail with OSError(ENODEV) ('nack') or OSError(ETIMEDOUT)."""
        self._pending += n - self._fail_n.get(addr, 0)
        self._fail_n[addr] = n
        self._fail_err[addr] = _KINDS[kind]

    @micropython.native
    def _dev(self, addr, nbytes):
        self.transactions += 1
        self.clocks += 9 * (nbytes + 1) + 2
        if self._pending:
            n = self._fail_n.get(addr, 0)
            if n:
                self._fail_n[addr] = n - 1
                self._pending -= 1
                raise OSError(self._fail_err[addr])
        dev = self._devs.get(addr)
        if dev is None:
            raise OSError(_ENODEV)
        return dev

    # --- machine.I2C ------------------------------------------------------------------------
    @micropython.native
    def readfrom_mem_into(self, addr, memaddr, buf, addrsize=8):
        self.clocks += 9 * 2 + 1  # the register write and the repeated start
        self._dev(addr, len(buf)).read(memaddr, buf)

    def readfrom_mem(self, addr, memaddr, n, addrsize=8):
        buf = bytearray(n)
        self.readfrom_mem_into(addr, memaddr, buf)
        return bytes(buf)

    def writeto_mem(self, addr, memaddr, buf, addrsize=8):
        self.clocks += 9
        self._dev(addr, len(buf)).write(memaddr, buf)

    def readfrom_into(self, addr, buf, stop=True):
        self._dev(addr, len(buf)).read(None, buf)

    def readfrom(self, addr, n, stop=True):
        buf = bytearray(n)
        self.readfrom_into(addr, buf)
        return bytes(buf)

    def writeto(self, addr, buf, stop=True):
        dev = self._dev(addr, len(buf))
        if len(buf):
            dev.write(buf[0], memoryview(buf)[1:])
        return len(buf)

    def scan(self):
        return sorted(self._devs)
