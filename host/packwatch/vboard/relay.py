"""The virtual board's serial port: the relay between pty A (the board process's console) and
pty B, whose slave path is the port the host tools open (`port`, or the `link` symlink to it).

* Output is dropped while no host has the port open (POLLHUP), as USB CDC does; while one is
  connected the relay queues it and stops reading the board's output past _OUT_HIGH_WATER (flow
  control: a slow host never loses a line, the board waits).
* `unplug()` / `replug()`: the cable out and in (a new pty; the link follows it); `inject_serial`:
  garbage on the line, either way.
* The port is announced in packwatch.ports' registry, so `packwatch ports` lists it.
"""
import os
import select
import tty
from pathlib import Path

_OUT_HIGH_WATER = 1 << 18  # stop reading the firmware's output when the host lags this far behind


class Relay:
    """The pty relay (a part of VirtualBoard: it shares the instance)."""

    def _init_relay(self, link):
        self.link = Path(link) if link else None
        self.console = bytearray()  # recent firmware output (for error messages)
        self._outq = bytearray()
        self._b_master = None
        self._b_name = None
        self._connected = False

    @property
    def port(self):
        return str(self.link) if self.link else self._b_name

    def _open_ptys(self):
        self._a_master, a_slave = os.openpty()
        tty.setraw(a_slave)
        self._a_slave = a_slave
        os.set_blocking(self._a_master, False)
        self._open_port()

    def _close_ptys(self):
        for fd in (getattr(self, "_a_master", None), getattr(self, "_a_slave", None), self._b_master):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._b_master = None
        self._unregister()
        if self.link and self.link.is_symlink():
            self.link.unlink()

    def _open_port(self):
        m, s = os.openpty()
        tty.setraw(s)
        self._b_name = os.ttyname(s)
        os.close(s)  # the host opens it by path; POLLHUP tells us nobody has
        os.set_blocking(m, False)
        self._b_master = m
        if self.link:
            tmp = self.link.with_name(self.link.name + ".tmp")
            if tmp.is_symlink() or tmp.exists():
                tmp.unlink()
            tmp.symlink_to(self._b_name)
            os.replace(tmp, self.link)
        self._register()

    def _register(self):
        try:
            from .. import ports
            ports.register_vboard(self._b_name, self.serial, "packwatch virtual board (%s)" % self.scenario.name)
        except Exception:
            pass  # the registry is a convenience for `packwatch ports`; the port works without it

    def _unregister(self):
        try:
            from .. import ports
            ports.unregister_vboard(self.serial)
        except Exception:
            pass

    def unplug(self):
        """The USB cable comes out: the port disappears; the board keeps running."""
        with self._lock:
            if self._b_master is not None:
                os.close(self._b_master)
                self._b_master = None
                self._outq.clear()
                self._unregister()

    def replug(self):
        """The cable goes back in: a new port (the --link path follows it)."""
        with self._lock:
            if self._b_master is None:
                self._open_port()

    def host_connected(self):
        m = self._b_master
        if m is None:
            return False
        p = select.poll()
        p.register(m, select.POLLOUT)
        return not any(ev & select.POLLHUP for _, ev in p.poll(0))

    def inject_serial(self, data, to="device"):
        """Garbage on the line: towards the firmware's command parser or towards the host's decoder."""
        with self._lock:
            if to == "device":
                os.write(self._a_master, data)
            elif self.host_connected():
                self._outq += data

    def _check_host(self):
        """Whether a host has the port open (housekeeping): what was queued for one that left is dropped."""
        was = self._connected
        self._connected = self.host_connected()
        if was and not self._connected:
            self._outq.clear()

    def _from_host(self):
        """Bytes the host typed, to the board's console."""
        try:
            data = os.read(self._b_master, 4096)
            if data:
                os.write(self._a_master, data)
        except OSError:
            pass

    def _flush_host(self):
        """As much of the queued output as the host's side takes now."""
        if self.host_connected():
            try:
                n = os.write(self._b_master, self._outq)
                del self._outq[:n]
            except (BlockingIOError, OSError):
                pass
        else:
            self._outq.clear()

    def _drain_a(self):
        out = b""
        while True:
            try:
                data = os.read(self._a_master, 65536)
            except OSError:
                return out
            if not data:
                return out
            out += data

    def _to_host(self, data):
        self.console += data
        if len(self.console) > 16384:
            del self.console[:-8192]
        self._connected = self.host_connected()
        if self._connected:
            self._outq += data
