# The firmware application: schedules the sample (pwfw.pack reads the chips), the estimator, the
# protections and the reports, encodes the messages, polls the serial port for commands (pwfw.commands
# runs them) and glues persistence. Portable; the hardware is reached only through the `hal` object.
import gc

from pwfw.compat import call, const, micropython, ticks_add, ticks_diff, unload
from pwfw.pack import F_CMD, F_STORE, FAULT_NAMES, PROT_NAMES, Pack
from pwfw.protect import ALARM_NAMES
from pwfw.protocol import FrameWriter, LineReader

_SEQ_MASK = const(0x3FFFFFFF)
_FET_CHG = const(1)  # `fet` bits in `rep`: charge path closed, discharge path closed
_FET_DSG = const(2)
_FET_AFE_CHG = const(4)  # the AFE's CHG / DSG drivers on (FET Status, read once a second)
_FET_AFE_DSG = const(8)
_OPEN_WIRE = const(128)  # pwfw.protect's open_wire alarm: a sense wire, not a deep cell
_BAL_MASK = const(2)  # pwfw.balance's Balancer.st: the cells bleeding now, the next decision's ticks
_BAL_NEXT = const(8)
_BAL_FETS = const(10)
_RELAY_MASK = const(0xBD)  # pwfw.protect's: the alarms that open the relay
_CHG_STOP = const(0x95)  # pwfw.protect's: the alarms that stop charging / discharging (fets_ok)
_DSG_STOP = const(0xAA)
_EV_CNT = const(64)  # pwfw.protect's _CNT: the events waiting in Protect._s's ring
_AFE_LOST_SAMPLES = const(20)  # pwfw.pack's: samples of a silent AFE before the path opens
RESET_FILE = "reset.txt"


class App:
    def __init__(self, hal):
        from pwfw.config import Config
        from pwfw.protect import Protect
        from pwfw.store import Store

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
        self.seq = 0
        self.boots = 0
        # the pack first: configuring the AFE loads its set-up modules, which need the heap the
        # estimator takes once loaded
        self.pack = Pack(hal, board, self.cfg)
        gc.collect()
        from pwfw.soc import Estimator, load_model

        gc.collect()
        model = load_model(board.get("model") or call("app_rare", "model_path", board["chemistry"]))
        self.est = Estimator(model, self.n_cells, self.cfg.capacity_mah)
        model = None
        self.prot = Protect(self.cfg)
        from pwfw.balance import Balancer

        self.bal = Balancer(self.cfg, self.n_cells, hal.ticks_ms())
        self.reset_cause = self.cal = None
        self._boot_save = False
        call("app_rare", "start", self)  # the reset cause, the saved state, the calibration
        gc.collect()  # start the loop with set-up garbage gone: the steady state allocates nothing
        now = hal.ticks_ms()
        self.next_sample = now
        self.next_report = now
        self._last_sample = now
        self._alert = False  # the ALERT pin as last seen (an extra sample on each assertion)
        self._relay = None  # the relay as last driven (None: not yet): the pin is written on a change
        self._shut_said = False
        self.samples = 0
        self.hdr()

    def save(self, now=None):
        try:
            d = {"boots": self.boots, "cfg": self.cfg.overrides(), "est": self.est.state(),
                 "bal": call("balance_cmd", "state", self.bal)}
            ok = self.store.save(d, now, self.est.soc_pm)
        except MemoryError:  # the key table or the record code did not fit now: flagged, tried again when due
            ok = False
        if not ok:
            self.pack.fault |= F_STORE

    # --- serial port: the FrameWriter writes through us ------------------------------------
    def write(self, buf, n):
        self.hal.serial_write(buf, n)

    # --- messages --------------------------------------------------------------------------
    def hdr(self, topic=b"hdr"):
        call("app_rare", "hdr", self, topic)  # at boot and for `info` (pwfw.app_rare)

    def report(self, now):
        o = self.out
        o.begin(b"rep")
        o.int(b"seq", self._next_seq())
        o.int(b"ms", now)
        p = self.pack
        o.ints(b"cell_mv", p.cells)
        o.int(b"stack_mv", p.stack_mv)
        o.int(b"i_ma", p.i_ma if p.i_ok else None)  # not measured at this sample: null, not the last reading
        o.ints(b"t_dc", p.temps)
        o.int(b"soc_pm", self.est.soc_pm)
        o.int(b"sig_pm", self.est.sigma_pm)
        o.int(b"alarm", self.prot.alarm)
        o.int(b"fault", p.fault)
        o.int(b"fet", self.fet())
        o.int(b"prot", p.prot)
        o.int(b"bal", self.bal.st[_BAL_MASK])
        o.end()

    def cell_report(self, now):
        o = self.out
        o.begin(b"cell")
        o.int(b"seq", self._next_seq())
        o.int(b"ms", now)
        o.ints(b"soc_pm", self.est.cell_soc_pm)
        o.int(b"cap_mah", self.est.cap_mah)
        o.ints(b"bal_mah", self.bal.bled_mah)
        o.end()

    def event(self, now, name, on, val, idx, setting=None):
        o = self.out
        o.begin(b"evt")
        o.int(b"seq", self._next_seq())
        o.int(b"ms", now)
        o.str(b"name", name)
        o.int(b"on", 1 if on else 0)
        o.int(b"val", val)
        o.int(b"idx", idx)
        if setting is not None:
            o.str(b"setting", setting)
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
        wait = ticks_diff(self.next_sample, now)  # kept = ticks_diff(self.next_sample, now) below
        if wait > 0:
            # ALERT newly asserted since the last look (the part latches it until the status read
            # clears it; a condition that persists latches again at once, so only an assertion counts)
            a = hal.alert()
            new = a and not self._alert
            self._alert = a
            if not new:
                hal.sleep_ms(wait)  # commands that arrive meanwhile wait for the next step (< one sample)
                now = hal.ticks_ms()
                wait = ticks_diff(self.next_sample, now)
                if wait > 0:
                    a = hal.alert()  # the same test again (inline: a method call each cost ~45 us)
                    new = a and not self._alert
                    self._alert = a
                    if not new:
                        return  # woken early (a port's sleep may be short)
        if wait > 0:
            # the AFE asserted ALERT (a protection, PF or safety alert latched): an extra sample now,
            # its status read at once; the sample grid and the reports stay as they are
            self.pack.alert = True
            self.sample(now)
            self.pack.alert = False
            hal.wdt_feed()
            return
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
        p = self.pack
        fault0 = p.fault
        prot0 = p.prot
        if p.read(now):  # the AFE answered: the protections judge fresh readings
            self.prot.i_sat = p.i_sat  # a saturated reading is an over-current at once (pwfw.protect)
            self.prot.check(now, p.cells, p.stack_mv, p.i_ma, p.temps)
        # the AFE's FETs by direction (a charge alarm still lets the pack discharge); the relay, one
        # switch for both paths, opens on any hazard and whenever the AFE is not verified (fail safe).
        # Driven before settle(): its once-a-second accumulator read waits ~1 ms on the part
        # (pwfw.protect's fets_ok() and what was Pack.drive, inline: two calls less per sample) the
        # AFE's FETs the alarms allow, bit 0 charge, bit 1 discharge, and balancing's end-of-charge stop
        a = self.prot.alarm
        want = ((0 if a & _CHG_STOP else 1) | (0 if a & _DSG_STOP else 2)) & self.bal.st[_BAL_FETS]
        if p.safe_off:  # sensors lost: nothing conducts, or (board failsafe.keep_dsg) discharge only
            want &= 2 if p.keep_dsg else 0
        if want != p._want and p.afe_ready:  # a subcommand only when the wish changes
            p._fets(want)
        # self.path() != 0, inline (a native call less per sample): the alarms read once above
        on = p.afe_ready and not a & _RELAY_MASK and p.afe_misses < _AFE_LOST_SAMPLES
        if on and p.safe_off and not p.keep_dsg:
            on = False
        if on != self._relay:
            self._relay = on
            self.hal.relay(on)
        if p.settle():
            self.est.update(dt, p.i_ma, p.cells, p.temps[0], p.i_avg_ma)  # counts the accumulator's charge
            if p.afe_ready and ticks_diff(now, self.bal.st[_BAL_NEXT]) >= 0:  # about once a second, not per sample
                self.bal.run(now, p, self.est)
            if p.deep_uv(dt) and not self.prot.alarm & _OPEN_WIRE and not p.shut:
                self._shutdown(now)
        while self.prot._s[_EV_CNT]:  # events waiting (pwfw.protect's ring): pop_event only then
            ev = self.prot.pop_event()
            self.event(now, ALARM_NAMES[ev[0]], ev[1], ev[2], ev[3])
        changed = p.fault ^ fault0
        if changed:
            for bit in range(len(FAULT_NAMES)):
                if changed & (1 << bit):
                    self.event(now, FAULT_NAMES[bit], p.fault & (1 << bit), None, None)
        if p.notes:
            self._notes(now)
        changed = p.prot ^ prot0
        if changed:
            for bit in range(len(PROT_NAMES)):
                if changed & (1 << bit):
                    self.event(now, PROT_NAMES[bit], p.prot & (1 << bit), None, None)

    def _shutdown(self, now):
        """Deep under-voltage with no charger for the board's failsafe.shutdown_s: save the state, say
        so, then SHUTDOWN the AFE, whose REG1 feeds this MCU: the board goes dark until a charger
        wakes the part (docs/hardware.md, "Supervision")."""
        if not self._shut_said:  # once, however many samples the commands take to get through
            self._shut_said = True
            self.save(now)
            self.event(now, "shutdown", 1, self.pack.low_mv, None)
        self.pack.shutdown()

    def _notes(self, now):
        n = self.pack.notes
        while n:
            name, on, val, setting = n.pop(0)
            self.event(now, name, on, val, None, setting)

    def path(self):  # bytecode: App.sample has it inline; fet() calls it once a report
        """The power path (relay / contactor) as sample() drives it: closed only with the AFE
        configured and verified, answering, and no alarm that opens it (fail safe)."""
        p = self.pack
        # prot.relay_ok() and the AFE's silence (pack's _AFE_LOST_SAMPLES), inline: two native calls less per sample
        if p.afe_ready and not self.prot.alarm & _RELAY_MASK and p.afe_misses < _AFE_LOST_SAMPLES:
            if p.safe_off:  # sensors lost: open, unless the board keeps discharge on (failsafe.keep_dsg)
                return _FET_DSG if p.keep_dsg else 0
            return _FET_CHG | _FET_DSG  # one relay switches both paths
        return 0

    def fet(self):  # bytecode: once a report
        """`fet` in `rep`: the path as driven (bits 0-1) and the AFE's CHG/DSG drivers (bits 2-3).
        Computed, not stored, since only a sample changes what it depends on."""
        return self.path() | (self.pack.afe_fets << 2)

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
                    self._command(text)

    def _command(self, text):
        # commands are rare: pwfw.commands is loaded for the line and dropped after it, so the loop
        # does not hold its code (docs/architecture.md, Memory)
        if text == "mem":
            self.mem()  # the live heap as the loop holds it: measured before loading the commands
            return
        if text == "afe":
            self.afe()  # the command that needs the most heap: without pwfw.commands loaded beside it
            return
        gc.collect()
        try:
            from pwfw import commands
        except MemoryError:
            self.reply(text.split(" ")[0], False, val="out of memory: command not run")
            return
        except Exception as e:  # a broken image must not take the loop down: flag it, as commands.run does
            self.pack.fault |= F_CMD
            self.reply(text.split(" ")[0], False, val="internal error: %r" % (e,))
            return
        try:
            commands.run(self, text)
        finally:
            commands = None
            unload("commands", "config_keys")  # config_keys: held by `set` for its checks
            gc.collect()

    def afe(self):
        """The `afe` reply: every AFE protection read back (pwfw.afe_report, loaded for it and dropped)."""
        gc.collect()
        try:
            from pwfw.afe_report import command

            command(self)
        except MemoryError:
            self.reply("afe", False, val="not enough memory to read the AFE now; try again")
        except Exception as e:  # a bug must not take the loop down: flag it, as pwfw.commands.run does
            self.pack.fault |= F_CMD
            self.reply("afe", False, val="internal error: %r" % (e,))
        finally:
            command = None
            unload("afe_report", "afe_config", "bq76952_units")
            gc.collect()

    def mem(self):
        """The `mem` reply: the live heap after a collection (what the firmware holds, to watch for
        growth over days); the virtual board's simulated chips (hal.sim_heap) are not the firmware's."""
        gc.collect()
        sim = getattr(self.hal, "sim_heap", 0)
        o = self.out
        o.begin(b"ok")
        o.str(b"cmd", "mem")
        o.int(b"alloc", gc.mem_alloc() - sim)
        o.int(b"free", gc.mem_free())
        o.int(b"sim", sim)
        o.end()


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
    from pwfw import boot

    app = boot.start(hal)
    # the start-up code is not needed any more: its bytecode goes back to the heap
    del boot
    unload("boot", "config_keys")  # config_keys: the key table pwfw.boot checked the board file with
    gc.collect()
    if app is None:
        return
    try:
        app.run()
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # MemoryError included: restart cleanly and tell the host why
        _crash(app.hal, e)
