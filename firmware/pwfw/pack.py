# The pack as the firmware measures it: the AFE (BQ76952), the current sensor (the AFE's coulomb
# counter or an INA228) and the NTCs, read into one sample (cells, stack, current, temperatures) with
# the fault bits and their policy. Above this module nothing touches a chip: App, the estimator and
# the protections read only the sample (the chip-neutral split of LibreSolar's bms-firmware).
from array import array

from pwfw.compat import const, micropython, ticks_add, ticks_diff

# `fault` in `rep` and the fault `evt` names: bit k is FAULT_NAMES[k] (docs/protocol.md, protocol_vectors.json;
# tests/t0/test_contract_names.py holds the bits below, the host's table and the spec to it)
FAULT_NAMES = ("afe", "afe_crc", "current", "ntc", "store", "cmd")
_F_AFE = const(1)
_F_AFE_CRC = const(2)
_F_CURRENT = const(4)
_F_NTC = const(8)
F_STORE = const(16)  # set by App (persistence) and pwfw.commands, on this sample's fault word
F_CMD = const(32)
_AFE_LOST_SAMPLES = const(20)  # relay opens when the AFE stays silent this long: no data, no protection
_TEMP_MS = const(1000)  # temperatures are read once a second: thermal time constants are minutes
_STUCK_READS = const(60)  # an NTC whose raw code never moves for a minute is stuck


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
        self.raw_i_ma = None
        self.fault = 0
        self.afe_misses = 0
        self.next_temp = hal.ticks_ms()
        self._make_sensors(board)

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

    @micropython.native
    def read(self, now):
        """Take one sample; True when the AFE answered (cells, stack and the CC2 current are fresh)."""
        afe_ok = self._read_afe()
        self._read_current(afe_ok)
        if ticks_diff(now, self.next_temp) >= 0:
            self.next_temp = ticks_add(now, _TEMP_MS)
            self._read_temps()
        return afe_ok

    @micropython.native
    def afe_lost(self):
        """The AFE has been silent for _AFE_LOST_SAMPLES samples: no data, so no protection."""
        return self.afe_misses >= _AFE_LOST_SAMPLES

    @micropython.native
    def _read_afe(self):
        afe = self.afe
        try:
            afe.read_frame(self.cells)  # cells, stack and CC2 current: one transaction
            self.stack_mv = afe.stack_mv
            self.fault &= ~(_F_AFE | _F_AFE_CRC)
            self.afe_misses = 0
            return True
        except OSError:
            self.fault |= _F_AFE
            self.afe_misses += 1
        except ValueError:  # CRC errors after the driver's retries
            self.fault |= _F_AFE_CRC
            self.afe_misses += 1
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
