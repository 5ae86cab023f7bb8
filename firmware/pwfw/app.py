# The firmware application: sample, estimate, protect, report, obey commands, persist.
# Everything here is portable; the hardware is reached only through the `hal` object.
from array import array
import gc
import json

from pwfw import FORMAT, VERSION
from pwfw.compat import const, micropython, ticks_add, ticks_diff
from pwfw.protocol import FrameWriter, LineReader

ALARM_NAMES = ("cell_ov", "cell_uv", "ot_chg", "ot_dsg", "oc_chg", "oc_dsg", "imbalance", "open_wire")
FAULT_NAMES = ("afe", "afe_crc", "current", "ntc", "store", "cmd")
_F_AFE = const(1)
_F_AFE_CRC = const(2)
_F_CURRENT = const(4)
_F_NTC = const(8)
_F_STORE = const(16)
_F_CMD = const(32)
_AFE_LOST_SAMPLES = const(20)  # relay opens when the AFE stays silent this long: no data, no protection
_TEMP_MS = const(1000)  # temperatures are read once a second: thermal time constants are minutes
_STUCK_READS = const(60)  # an NTC whose raw code never moves for a minute is stuck
_SEQ_MASK = const(0x3FFFFFFF)
_FET_CHG = const(1)  # `fet` bits in `rep`: charge path closed, discharge path closed
_FET_DSG = const(2)
RESET_FILE = "reset.txt"


class App:
    def __init__(self, hal):
        from pwfw.config import Config
        from pwfw.protect import Protect
        from pwfw.store import Store

        gc.collect()
        from pwfw.soc import Estimator, load_model

        gc.collect()

        self.hal = hal
        board = hal.board
        self.out = FrameWriter(self)
        self.lines = LineReader()
        self.cfg = Config(board)
        # save on 1 % of SoC change (at most every 2 min) or every 15 min: a power cut loses at most
        # that much counting; wear: docs/persistence.md
        self.store = Store(soc_step_pm=10, gap_ms=120000)
        self.n_cells = board["cells"]
        self.cells = array("h", [0] * self.n_cells)
        self.n_ntc = len(board["ntc"]["pins"])
        self.bq_ts = board.get("bq_ts") or []
        self.temps = [None] * (self.n_ntc + len(self.bq_ts))
        self._ntc_last = array("i", [-1] * self.n_ntc)
        self._ntc_same = array("i", [0] * self.n_ntc)
        self.stack_mv = 0
        self.i_ma = 0
        self.fault = 0
        self._afe_misses = 0
        self.seq = 0
        self.boots = 0
        self._make_sensors(board)
        model = load_model(board.get("model") or self._model_path(board["chemistry"]))
        self.est = Estimator(model, self.n_cells, self.cfg.capacity_mah)
        self.prot = Protect(self.cfg)
        self.reset_cause = self._reset_cause()
        self._restore()
        gc.collect()  # start the loop with set-up garbage gone: the steady state allocates nothing
        now = hal.ticks_ms()
        self.next_sample = now
        self.next_report = now
        self._last_sample = now
        self.next_temp = now
        self.samples = 0
        self.hdr()

    # --- set-up ---------------------------------------------------------------------------
    @staticmethod
    def _model_path(chem):
        import pwfw

        d = pwfw.__file__.rsplit("/", 1)[0] if "/" in pwfw.__file__ else "."
        return d + "/models/" + chem + ".json"

    def _make_sensors(self, board):
        from pwfw.bq76952 import BQ76952
        from pwfw.ntc import Ntc

        afe = board["afe"]
        self.afe = BQ76952(self.hal.i2c, afe.get("addr", 8), crc=afe.get("crc", False), sleep=self.hal.sleep_ms)
        cur = board["current"]
        try:
            self.afe.configure(self.n_cells, board.get("cell_map"), cur.get("max_ma", 32767))
        except (OSError, ValueError):
            self.fault |= _F_AFE
        self.ina = None
        if cur["source"] == "ina228":
            from pwfw.ina228 import INA228

            self.ina = INA228(self.hal.i2c, cur.get("ina228_addr", 0x40), cur["shunt_uohm"], cur["max_ma"])
            try:
                self.ina.configure()
            except (OSError, ValueError):
                self.fault |= _F_CURRENT
        self.ntc = Ntc.from_board(board["ntc"])

    def _reset_cause(self):
        # a crash leaves a marker before the reset; otherwise the HAL knows
        try:
            with open(RESET_FILE) as f:
                cause = f.read().strip()
            import os

            os.remove(RESET_FILE)
            return cause
        except OSError:
            return self.hal.reset_cause()

    def _restore(self):
        gc.collect()  # the record is read at the heap's high-water mark of the start-up
        d = self.store.load()
        if self.store.corrupt and d is None:  # a torn slot beside a good one is the design working
            self.fault |= _F_STORE
        if d:
            b = d.get("boots", 0)
            self.boots = b if type(b) is int and b >= 0 else 0
            if self.cfg.load_overrides(d.get("cfg") or {}):
                self.fault |= _F_STORE
            if d.get("est"):
                try:
                    self.est.restore(d["est"])
                except (ValueError, TypeError, KeyError):
                    self.fault |= _F_STORE  # a record from another model: start as on a first boot
        self.boots += 1
        self._boot_save = True  # after the first sample: the estimator's state means something then

    def save(self, now=None):
        d = {"boots": self.boots, "cfg": self.cfg.overrides(), "est": self.est.state()}
        if not self.store.save(d, now, self.est.soc_pm):
            self.fault |= _F_STORE

    # --- serial port: the FrameWriter writes through us ------------------------------------
    def write(self, buf):
        self.hal.serial_write(buf)

    # --- messages --------------------------------------------------------------------------
    def hdr(self, topic=b"hdr"):
        o = self.out
        o.begin(topic)
        if topic == b"ok":
            o.str(b"cmd", "info")
        o.str(b"fw", VERSION)
        o.int(b"fmt", FORMAT)
        o.str(b"board", self.hal.board.get("name"))
        o.str(b"chem", self.hal.board.get("chemistry"))
        o.int(b"cells", self.n_cells)
        o.str(b"reset", self.reset_cause)
        o.int(b"boots", self.boots)
        o.str(b"uid", self.hal.uid())
        o.end()

    @micropython.native
    def report(self, now):
        o = self.out
        o.begin(b"rep")
        o.int(b"seq", self._next_seq())
        o.int(b"ms", now)
        o.ints(b"cell_mv", self.cells)
        o.int(b"stack_mv", self.stack_mv)
        o.int(b"i_ma", self.i_ma)
        o.ints(b"t_dc", self.temps)
        o.int(b"soc_pm", self.est.soc_pm)
        o.int(b"sig_pm", self.est.sigma_pm)
        o.int(b"alarm", self.prot.alarm)
        o.int(b"fault", self.fault)
        o.int(b"fet", self.fet())
        o.end()

    @micropython.native
    def cell_report(self, now):
        o = self.out
        o.begin(b"cell")
        o.int(b"seq", self._next_seq())
        o.int(b"ms", now)
        o.ints(b"soc_pm", self.est.cell_soc_pm)
        o.int(b"cap_mah", self.est.cap_mah)
        o.end()

    def event(self, now, name, on, val, idx):
        o = self.out
        o.begin(b"evt")
        o.int(b"seq", self._next_seq())
        o.int(b"ms", now)
        o.str(b"name", name)
        o.int(b"on", 1 if on else 0)
        o.int(b"val", val)
        o.int(b"idx", idx)
        o.end()

    def reply(self, cmd, ok, key=None, val=None, key2=None, val2=None):
        """An `ok` line with up to two fields (keys are bytes), or an `err` line with val as the text."""
        o = self.out
        o.begin(b"ok" if ok else b"err")
        o.str(b"cmd", cmd)
        if not ok:
            o.str(b"error", val)
        elif key is not None:
            if isinstance(val, int):
                o.int(key, val)
            else:
                o.str(key, val)
            if key2 is not None:
                o.int(key2, val2)
        o.end()

    def _next_seq(self):
        s = self.seq
        self.seq = (s + 1) & _SEQ_MASK
        return s

    # --- the loop --------------------------------------------------------------------------
    def run(self):
        while True:
            self.step()

    @micropython.native  # its frame stays on the C stack: a bytecode frame this size is heap-allocated
    def step(self):
        hal = self.hal
        self.poll_commands()
        now = hal.ticks_ms()
        wait = ticks_diff(self.next_sample, now)
        if wait > 0:
            hal.sleep_ms(wait)  # commands that arrive meanwhile wait for the next step (< one sample)
            now = hal.ticks_ms()
            if ticks_diff(self.next_sample, now) > 0:
                return  # woken early (a port's sleep may be short)
        sample_ms = self.cfg.sample_ms
        self.next_sample = ticks_add(self.next_sample, sample_ms)
        if ticks_diff(now, self.next_sample) > 10 * sample_ms:
            self.next_sample = ticks_add(now, sample_ms)  # we were stopped (REPL, debugger): don't race to catch up
        self.sample(now)
        if self._boot_save:
            self._boot_save = False
            self.save(now)
        if ticks_diff(now, self.next_report) >= 0:
            self.next_report = ticks_add(self.next_report, self.cfg.report_ms)
            if ticks_diff(now, self.next_report) > 0:
                self.next_report = ticks_add(now, self.cfg.report_ms)
            self.report(now)
            self.samples += 1
            if self.samples % 10 == 0:
                self.cell_report(now)
            if self.store.due(now, self.est.soc_pm):
                self.save(now)
        hal.wdt_feed()

    @micropython.native
    def sample(self, now):
        dt = ticks_diff(now, self._last_sample)
        self._last_sample = now
        fault0 = self.fault
        afe_ok = self._read_afe()
        self._read_current(afe_ok)
        if ticks_diff(now, self.next_temp) >= 0:
            self.next_temp = ticks_add(now, _TEMP_MS)
            self._read_temps()
        if afe_ok:
            self.est.update(dt, self.i_ma, self.cells, self.temps[0])
            self.prot.check(now, self.cells, self.stack_mv, self.i_ma, self.temps)
        while True:
            ev = self.prot.pop_event()
            if ev is None:
                break
            self.event(now, ALARM_NAMES[ev[0]], ev[1], ev[2], ev[3])
        changed = self.fault ^ fault0
        if changed:
            for bit in range(len(FAULT_NAMES)):
                if changed & (1 << bit):
                    self.event(now, FAULT_NAMES[bit], self.fault & (1 << bit), None, None)
        self.hal.relay(self.fet() != 0)

    @micropython.native
    def fet(self):
        """The power path as sample() drives it (`fet` in `rep`): computed, not stored, since only a
        sample changes what it depends on (and one more App attribute would double its dict)."""
        if self.prot.relay_ok() and self._afe_misses < _AFE_LOST_SAMPLES:
            return _FET_CHG | _FET_DSG  # one relay switches both paths
        return 0

    @micropython.native
    def _read_afe(self):
        afe = self.afe
        try:
            afe.read_frame(self.cells)  # cells, stack and CC2 current: one transaction
            self.stack_mv = afe.stack_mv
            self.fault &= ~(_F_AFE | _F_AFE_CRC)
            self._afe_misses = 0
            return True
        except OSError:
            self.fault |= _F_AFE
            self._afe_misses += 1
        except ValueError:  # CRC errors after the driver's retries
            self.fault |= _F_AFE_CRC
            self._afe_misses += 1
        return False

    @micropython.native
    def _read_current(self, afe_ok):
        if self.ina is None:
            if not afe_ok:  # the coulomb counter's reading came with the AFE read that failed
                self.fault |= _F_CURRENT
                return
            raw = self.afe.cc2_ma
        else:
            try:
                raw = self.ina.read_current_ma()
            except (OSError, ValueError):
                self.fault |= _F_CURRENT
                return
        self.fault &= ~_F_CURRENT
        self.raw_i_ma = raw
        self.i_ma = self.cfg.current_ma(raw)

    @micropython.native
    def _read_temps(self):
        hal = self.hal
        temps = self.temps
        bad = False
        for ch in range(self.n_ntc):
            t = self.ntc.read_dc(hal, ch)
            code = self.ntc.raw
            # a healthy ADC dithers by an LSB or two; a code frozen for a minute of reads is a stuck input
            if code == self._ntc_last[ch]:
                self._ntc_same[ch] += 1
            else:
                self._ntc_last[ch] = code
                self._ntc_same[ch] = 0
            if t is None or self._ntc_same[ch] >= _STUCK_READS:
                t = None
                bad = True
            temps[ch] = t
        k = self.n_ntc
        for n in self.bq_ts:
            try:
                dk = self.afe.read_ts_dk(n)
                temps[k] = dk - 2732 if 0 < dk < 4500 else None
            except (OSError, ValueError):
                temps[k] = None
            if temps[k] is None:
                bad = True
            k += 1
        if bad:
            self.fault |= _F_NTC
        else:
            self.fault &= ~_F_NTC

    # --- commands ----------------------------------------------------------------------------
    @micropython.native
    def poll_commands(self):
        hal = self.hal
        lines = self.lines
        while True:
            b = hal.serial_read()
            if b < 0:
                return
            if b == 3:  # Ctrl-C: hand the board to the REPL, as every MicroPython board does
                raise KeyboardInterrupt
            if lines.feed(b):
                text, err = lines.take()
                if err & LineReader.TOO_LONG:
                    self.reply(None, False, val="line too long")
                elif err:
                    self.reply(None, False, val="bad bytes")
                elif text:
                    self.command(text)

    def command(self, text):
        parts = text.split(" ")
        name = parts[0]
        args = parts[1:]
        handler = getattr(self, "cmd_" + name, None) if name.isalpha() else None
        if handler is None:
            self.reply(name, False, val="unknown command")
            return
        try:
            handler(args)
        except ValueError as e:
            self.reply(name, False, val=str(e) or "bad argument")
        except Exception as e:  # a bug in a handler must not take the board down: say so, flag it
            self.fault |= _F_CMD
            self.reply(name, False, val="internal error: %r" % (e,))

    @staticmethod
    def _int_arg(args, lo, hi, what):
        if len(args) != 1:
            raise ValueError("expected one argument: " + what)
        s = args[0]
        digits = s[1:] if s[:1] == "-" else s
        if not digits or not digits.isdigit():
            raise ValueError("not an integer: " + s)
        v = int(s)
        if v < lo or v > hi:
            raise ValueError("%s out of range %d..%d" % (what, lo, hi))
        return v

    def _no_args(self, args):
        if args:
            raise ValueError("takes no arguments")

    def cmd_ping(self, args):
        self._no_args(args)
        self.reply("ping", True, b"ms", self.hal.ticks_ms())

    def cmd_info(self, args):
        self._no_args(args)
        self.hdr()
        self.hdr(b"ok")

    def cmd_config(self, args):
        self._no_args(args)
        o = self.out
        o.begin(b"cfg")
        for k, v in self.cfg.as_dict().items():
            o.int(k.encode(), v)
        o.end()
        self.reply("config", True)

    def cmd_rate(self, args):
        v = self._int_arg(args, 100, 60000, "rate_ms")
        self.cfg.set("report_ms", v)
        self.next_report = self.hal.ticks_ms()
        self.reply("rate", True, b"rate_ms", v)

    def cmd_soc(self, args):
        if args == ["reset"]:
            self.est.reset()
        else:
            self.est.set_soc(self._int_arg(args, 0, 1000, "soc_pm"))
        self.save()
        self.reply("soc", True, b"soc_pm", self.est.soc_pm)

    def cmd_zero(self, args):
        self._no_args(args)
        raw = getattr(self, "raw_i_ma", None)
        if raw is None:
            raise ValueError("no current reading yet")
        # with the power path open no current flows: whatever is read is offset; closed, only a reading
        # a sensor's offset can explain is (zero_max_ma), else `zero` would hide a real load
        lim = self.cfg.zero_max_ma
        if self.fet() and abs(raw) > lim:
            raise ValueError("pack is not at rest: %d mA measured, more than zero_max_ma %d mA with the power path "
                             "closed; stop the load and the charger, then zero again" % (raw, lim))
        self.cfg.set("i_offset_ma", raw)  # range-checked: a wild reading raises ValueError
        self.save()
        self.reply("zero", True, b"offset_ma", raw)

    def cmd_set(self, args):
        if len(args) != 2:
            raise ValueError("usage: set <key> <int>")
        key = args[0]
        if key not in self.cfg.keys():
            raise ValueError("unknown key: " + key)
        v = self._int_arg(args[1:], -0x3FFFFFFF, 0x3FFFFFFF, key)
        self.cfg.set(key, v)  # checks the key's range and the order of paired limits
        self.reply("set", True, b"key", key, b"val", v)

    def cmd_save(self, args):
        self._no_args(args)
        self.save()
        self.reply("save", True, b"writes", self.store.writes)

    def cmd_clear(self, args):
        self._no_args(args)
        self.prot.clear()
        self.reply("clear", True, b"alarm", self.prot.alarm)

    def cmd_mem(self, args):
        # live heap after a collection: what the firmware holds, to watch for growth over days
        self._no_args(args)
        gc.collect()
        o = self.out
        o.begin(b"ok")
        o.str(b"cmd", "mem")
        o.int(b"alloc", gc.mem_alloc() - getattr(self.hal, "sim_heap", 0))
        o.int(b"free", gc.mem_free())
        o.int(b"sim", getattr(self.hal, "sim_heap", 0))
        o.end()

    def cmd_reboot(self, args):
        self._no_args(args)
        self.reply("reboot", True)
        self.save()
        self.hal.reset()


def _crash(hal, e):
    """Print the exception, leave the reset cause for the next boot, reset (after a pause)."""
    try:
        import sys

        sys.print_exception(e)
    except Exception:
        pass
    try:
        with open(RESET_FILE, "w") as f:
            f.write("memory" if isinstance(e, MemoryError) else "crash")
    except OSError:
        pass
    hal.sleep_ms(1000)  # a crash loop must not spin flat out
    hal.reset()


def main(hal=None):
    """What main.py runs: pwfw.boot starts the App (or says why it cannot, and leaves the board at the
    REPL); then the loop runs. A crash in the loop resets the board, and the next `hdr` says why."""
    import sys
    from pwfw import boot

    app = boot.start(hal)
    # the start-up code is not needed any more: its bytecode goes back to the heap
    del boot
    sys.modules.pop("pwfw.boot", None)
    try:
        import pwfw

        delattr(pwfw, "boot")
    except (AttributeError, TypeError):
        pass
    gc.collect()
    if app is None:
        return
    try:
        app.run()
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # MemoryError included: restart cleanly and tell the host why
        _crash(app.hal, e)
