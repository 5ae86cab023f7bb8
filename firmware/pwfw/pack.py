# The pack as the firmware measures it: the AFE (BQ76952), the current sensor (the AFE's coulomb
# counter or an INA228) and the NTCs, read into one sample (cells, stack, current, temperatures) with
# the fault bits and their policy. Above this module nothing touches a chip: App, the estimator and
# the protections read only the sample (the chip-neutral split of LibreSolar's bms-firmware).
from array import array

from pwfw.compat import const, micropython, ticks_add, ticks_diff
from pwfw.plaus import cells_ext

# `fault` in `rep` and the fault `evt` names: bit k is FAULT_NAMES[k] (docs/protocol.md, protocol_vectors.json;
# tests/t0/test_contract_names.py holds the bits below, the host's table and the spec to it)
FAULT_NAMES = ("afe", "afe_crc", "current", "ntc", "store", "cmd", "no_temp", "cal", "v_stack", "v_pack", "i_cross",
               "i_stuck", "t_cross")
_F_AFE = const(1)
_F_AFE_CRC = const(2)
_F_CURRENT = const(4)
_F_NTC = const(8)
F_STORE = const(16)  # set by App (persistence) and pwfw.commands, on this sample's fault word
F_CMD = const(32)
_F_NO_TEMP = const(64)  # every temperature sensor lost: the power path opens (fail safe)
F_CAL = const(128)  # the calibration record was corrupt or for another sensor: defaults used (App, commands)
# plausibility faults (pwfw.plaus: the checks and their thresholds, from the parts' accuracies)
_F_V_STACK = const(256)
_F_V_PACK = const(512)
_F_I_CROSS = const(1024)
_F_I_STUCK = const(2048)
_F_T_CROSS = const(4096)
_CRC_RECONF = const(3)  # samples in a row with CRC errors on a CRC board: the part may have reset into plain I2C
_CHARGE_MA = const(100)  # above this the pack is charging (a charger is there): no deep-discharge shutdown
_AFE_LOST_SAMPLES = const(20)  # relay opens when the AFE stays silent this long: no data, no protection (App.path)
_TEMP_MS = const(1000)  # temperatures are read once a second: thermal time constants are minutes
_STUCK_READS = const(60)  # an NTC whose raw code never moves for a minute is stuck
_RECONF_MS = const(5000)  # an AFE that could not be configured is tried again this often (power path open)
_SAFETY_EVERY = const(10)  # samples between reads of the AFE's Safety/PF/FET Status (and at once on SS/PF)
_BS_SSPF = const(0x1800)  # Battery Status SS | PF
# The AFE's latched protections in `prot` (docs/protocol.md "AFE protection bits"): Safety Status A
# bits 2-7, Safety Status B bits 0-2 and 4-7 (TRM SLUUBY2B 12.2), packed without the reserved bits,
# and Battery Status PF. `evt` lines name them when they latch or clear.
PROT_NAMES = ("cuv", "cov", "occ", "ocd1", "ocd2", "scd", "utc", "utd", "utint", "otc", "otd", "otint", "otf", "pf")
_PROT_PF = const(0x2000)


def _drop_setup():
    import gc
    import sys

    import pwfw

    for m in ("bq76952_setup", "bq76952_units", "afe_config"):
        sys.modules.pop("pwfw." + m, None)
        try:
            delattr(pwfw, m)  # the package holds its submodules too
        except (AttributeError, KeyError):  # not imported (MicroPython raises KeyError)
            pass
    gc.collect()


class Pack:
    """One sample of the pack, refreshed by read(now): `cells` (array('h'), mV), `stack_mv`, `i_ma`
    (calibrated, + charging), `raw_i_ma` (before calibration; None before the first reading), `temps`
    (0.1 °C or None: the MCU NTCs, then the AFE's TS inputs), `fault` (the fault bitmask)."""

    def __init__(self, hal, board, cfg):
        self.hal = hal
        self.cfg = cfg  # current calibration (offset, gain)
        self.n_cells = board["cells"]
        self.cells = array("h", [0] * self.n_cells)
        self.n_ntc = len(board["ntc"]["pins"])
        self.bq_ts = board.get("bq_ts") or []
        self.temps = [None] * (self.n_ntc + len(self.bq_ts))
        self._ntc_last = array("i", [-1] * self.n_ntc)
        self._ntc_same = array("i", [0] * self.n_ntc)
        self.stack_mv = 0
        self.i_ma = 0
        self.i_ok = False  # i_ma was measured this sample (else it holds the last reading: `rep` says null)
        self.raw_i_ma = None
        self.fault = 0
        self.afe_misses = 0
        self.raw_avg_ma = None  # the mean raw current of the last whole second (`cal current`)
        self._raw_sum = 0
        self._raw_n = 0
        self.i_sat = 0  # +1 / -1: this sample's current is at the sensor's full scale, in that direction
        self.i_avg_ma = 0  # the mean current since the last sample from the part's charge accumulator
        self.next_temp = hal.ticks_ms()
        self.board = board
        # the AFE's configuration is written and verified (the power path may close only then)
        self.afe_ready = False
        self.prot = 0  # the AFE's latched protections (PROT_NAMES bits)
        self.afe_fets = 0  # the AFE's CHG (bit 0) / DSG (bit 1) drivers on, from FET Status
        self._safety_n = 0
        self._bs = 0
        self._next_conf = 0
        self._now = 0
        self._dt = 0  # read() -> settle(): this sample's interval and whether the AFE answered
        self._ok = False
        self._conf_err = None  # the step or setting the last configuration failed at
        self._want = -1  # the AFE FET state last commanded (App.sample -> _fets()); -1: none yet
        self.alert = False  # App: the ALERT pin asserted (an extra sample): read the status at once
        self._crc_bad = 0
        # fail safe: sensors lost -> power path off (keep_dsg: the DSG FET and relay stay on); deep
        # under-voltage -> SHUTDOWN. The board's values (pwfw.afe_config.failsafe) are read by the
        # set-up (bq76952_setup.pack_configure), which loads that module anyway: none before it
        self.keep_dsg = False
        self.shutdown_mv = 0
        self.shutdown_ms = 0
        self.safe_off = False  # this sample: every temperature lost or the current saturated
        self._i_sat = False
        self.low_mv = 0  # the lowest cell of the last sample that had one below shutdown_mv, else 0
        self._low_ms = 0  # how long (ms of samples) a cell has been below shutdown_mv with no charger
        self.shut = False  # SHUTDOWN sent
        # (name, on, val, setting) events for App to send: configuration results and AFE resets (rare)
        self.notes = []
        self._make_sensors(board)
        from pwfw.plaus import Counter, Plaus

        self.count = Counter(self)  # charge from the hardware accumulators -> i_avg_ma
        self.plaus = Plaus(self)

    def _make_sensors(self, board):
        from pwfw.bq76952 import BQ76952
        from pwfw.ntc import Ntc

        afe = board["afe"]
        self.afe = BQ76952(self.hal.i2c, afe.get("addr", 8), crc=afe.get("crc", False), sleep=self.hal.sleep_ms)
        cur = board["current"]
        self.configure()
        self.ina = None
        if cur["source"] == "ina228":
            from pwfw.ina228 import INA228

            self.ina = INA228(self.hal.i2c, cur.get("ina228_addr", 0x40), cur["shunt_uohm"], cur["max_ma"])
            try:
                self.ina.configure()
            except (OSError, ValueError):
                self.fault |= _F_CURRENT
        self.ntc = Ntc.from_board(board["ntc"])

    def configure(self):
        """Write the board's whole AFE configuration and read it back (pwfw.bq76952_setup.pack_configure:
        protections, FET control, CC Gain, SEALED); True when verified. On failure the FETs stay off,
        the `afe` fault stays raised and an `afe_config` note names the failed step or setting; App keeps
        the power path open until one succeeds (tried again every _RECONF_MS). The set-up modules are
        dropped afterwards: the running loop does not carry them."""
        import gc

        gc.collect()  # the set-up modules need one stretch of heap: start from a compacted one
        try:
            from pwfw.bq76952_setup import pack_configure

            pack_configure(self)
            if self.cfg.unlock_key is None:  # once, while the AFE set-up's modules are loaded (pwfw.limits)
                self.cfg.hard_limits(self.board)
        except MemoryError:  # the set-up modules did not fit: fail safe, try again later
            self.afe_ready = False
            self.fault |= _F_AFE
            if self._conf_err != "memory":
                self._conf_err = "memory"
                self.notes.append(("afe_config", 1, None, "memory"))
        _drop_setup()
        return self.afe_ready

    @micropython.native
    def read(self, now):
        """Take one sample; True when the AFE answered (cells, stack and the CC2 current are fresh).
        Only direct reads: what waits on the part (the accumulator's subcommand) is settle()'s, after
        App has driven the power path from this sample."""
        self._dt = ticks_diff(now, self._now)
        self._now = now
        afe_ok = self._read_afe()
        if not self.afe_ready and ticks_diff(now, self._next_conf) >= 0:
            self._reconfigure(now)
        self._read_current(afe_ok)
        if ticks_diff(now, self.next_temp) >= 0:
            self.next_temp = ticks_add(now, _TEMP_MS)
            self._read_temps()
        self.safe_off = (self.fault & _F_NO_TEMP) != 0 or self._i_sat  # no bool(): a builtin call
        self._ok = afe_ok
        return afe_ok

    @micropython.native
    def settle(self):
        """The rest of read()'s sample: the charge counting (once a second the BQ76952's DASTATUS6
        subcommand, a ~1 ms wait) and the plausibility checks; True when the AFE answered."""
        self.count.sample(self._dt, self._ok)
        if self._ok:
            self.plaus.check(self._now, None)
        return self._ok

    @micropython.native
    def deep_uv(self, dt):
        """After a sample the AFE answered: True once a cell has been below shutdown_mv with no charge
        current for shutdown_s (the caller rules out an open sense wire)."""
        lo = cells_ext(self.cells, self.n_cells, 0)
        if lo < self.shutdown_mv and self.i_ma < _CHARGE_MA:
            self.low_mv = lo
            self._low_ms += dt
            return self._low_ms >= self.shutdown_ms
        self.low_mv = 0
        self._low_ms = 0
        return False

    def shutdown(self):
        """Send the AFE to SHUTDOWN (the caller has saved the state and sent `evt shutdown`); True when
        the part took the commands. Its REG1 stops, so a board powered from it stops here too."""
        try:
            self.afe.shutdown()
        except (OSError, ValueError):
            return False  # the next sample tries again
        self.shut = True
        return True

    def _reconfigure(self, now):
        self._next_conf = ticks_add(now, _RECONF_MS)
        self.configure()

    @micropython.native
    def _read_afe(self):
        afe = self.afe
        try:
            afe.read_frame(self.cells)  # Battery Status, cells, stack and CC2 current: one transaction
            self.stack_mv = afe.stack_mv
            self.fault &= ~_F_AFE_CRC
            self.afe_misses = 0
            self._crc_bad = 0
            if afe.stale:  # reset or out of its configuration: nothing measured now is trusted
                return self._lost_config()
            if self.afe_ready:
                self.fault &= ~_F_AFE
                # Battery Status every sample (it came with the frame); Safety/PF/FET Status when SS
                # or PF changes and every _SAFETY_EVERY samples
                bs = afe.status & _BS_SSPF
                n = self._safety_n - 1
                if bs != self._bs or n < 0 or self.alert:
                    self._bs = bs
                    n = _SAFETY_EVERY - 1
                    self._read_safety()
                self._safety_n = n
            return True
        except OSError:
            self.fault |= _F_AFE
            self.afe_misses += 1
        except ValueError:  # CRC errors after the driver's retries
            self.fault |= _F_AFE_CRC
            self.afe_misses += 1
            self._crc_lost()
        return False

    def _crc_lost(self):
        """A CRC board whose part keeps failing CRC: a POR brings it back in plain I2C (Comm Type is
        RAM, OTP unprogrammed: TRM 10.2), which no CRC read can see. Re-configure: setup() finds the
        part in the other framing, switches it back with SWAP_COMM_MODE and verifies everything."""
        if self.afe.crc and self.afe_ready:
            self._crc_bad += 1
            if self._crc_bad >= _CRC_RECONF:
                self._crc_bad = 0
                self._lost_config()

    def _lost_config(self):
        """Battery Status says POR, CONFIG_UPDATE or another security mode: the settings (the current's
        unit among them) may be the part's defaults again. Re-configure and re-verify now; this
        sample's readings are not used."""
        if self.afe_ready:
            self.afe_ready = False
            self.afe.acc_reset()  # a POR restarts the accumulator at 0: take a new baseline, no jump
            self.notes.append(("afe_reset", 1, self.afe.status, None))
            self._next_conf = self._now
        return False

    @micropython.native
    def _read_safety(self):
        afe = self.afe
        try:
            afe.read_safety()
            afe.read_alarm()  # and clear it: ALERT asserts again on the next event
        except (OSError, ValueError):
            return  # the next sample tries again (the frame read decides the afe faults)
        s = afe.safety
        a = s[1]  # Safety Status A, then B (s[0], s[2]: the alerts)
        b = s[3]
        self.prot = (a >> 2) | ((b & 7) << 6) | ((b >> 4) << 9) | (_PROT_PF if self.afe.status & 0x1000 else 0)
        f = afe.fet_status
        self.afe_fets = (f & 1) | ((f >> 1) & 2)  # FET Status bit 0 CHG_FET, bit 2 DSG_FET

    def _fets(self, want):
        """The AFE's FETs as the firmware's own protections allow them (App.sample calls this when its
        wish changes): bit 0 charge, bit 1 discharge (ALL_FETS_ON / CHG_PCHG_OFF / DSG_PDSG_OFF /
        ALL_FETS_OFF, TRM 12.5: the host can only turn a FET off; the AFE's protections still rule)."""
        afe = self.afe
        was = self._want
        self._want = want
        try:
            # a cut goes first: each subcommand waits ~1 ms for its answer. The off commands add to the
            # host's blocks; only ALL_FETS_ON clears them, so it is sent only to allow a direction again
            if not want:
                afe.subcommand(0x0095)  # ALL_FETS_OFF
            elif was < 0 or want & ~was:
                afe.subcommand(0x0096)  # ALL_FETS_ON (allows both)
            if want == 1:
                afe.subcommand(0x0093)  # DSG_PDSG_OFF
            elif want == 2:
                afe.subcommand(0x0094)  # CHG_PCHG_OFF
        except (OSError, ValueError):
            self._want = -1  # the next sample tries again

    @micropython.native
    def _read_current(self, afe_ok):
        self._i_sat = False
        self.i_sat = 0
        self.i_ok = False
        if self.ina is None:
            if not afe_ok:  # the coulomb counter's reading came with the AFE read that failed
                if self.afe_misses or not self.afe_ready:
                    self.fault |= _F_CURRENT
                return
            if not self.afe_ready:  # the AFE answers but its current unit is not verified
                self.fault |= _F_CURRENT
                return
            raw = self.afe.cc2_ma
            if self.afe.cc2_sat:  # at full scale: the true current may be far beyond it (fail safe)
                self._i_sat = True
        else:
            try:
                raw = self.ina.read_current_ma()
            except (OSError, ValueError):
                self.fault |= _F_CURRENT
                return
            if self.ina.saturated:
                self._i_sat = True
        self._raw_sum += raw
        self._raw_n += 1
        if self._raw_n >= 10:
            self.raw_avg_ma = self._raw_sum // self._raw_n
            self._raw_sum = 0
            self._raw_n = 0
        self.raw_i_ma = raw
        c = self.cfg
        self.i_ma = c.current_ma(raw) if c.i_offset_ma or c.i_gain_ppm else raw  # current_ma(raw) is raw then
        self.i_ok = True
        if self._i_sat:
            self.fault |= _F_CURRENT
            self.i_sat = 1 if raw > 0 else -1  # at least full scale: an over-current (pwfw.protect)
            return
        self.i_sat = 0
        self.fault &= ~_F_CURRENT

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
        for t in temps:
            if t is not None:
                self.fault &= ~_F_NO_TEMP
                return
        if temps:
            self.fault |= _F_NO_TEMP
