# The simulated BQ76952's state beyond the bus (hil/chips/bq76952.py has the bus side and the
# measurements): data memory after a POR, the subcommands, security modes, the protection state
# machine in the chip's own time base, FET outputs, status registers, ALERT, SLEEP and SHUTDOWN.
# A separate module so each compiles within a board-sized heap (the unix port compiles hil/ from
# source). TRM = TI SLUUBY2B; where it is ambiguous the comment says so (docs/hardware.md lists them).
_DM_BASE = 0x9180
_DM_SIZE = 0x200
_SUBCMD = 0x3E
_XBUF = 0x40
_DA = 0x9303
_M32 = 0xFFFFFFFF

# Data-memory defaults after a POR (OTP unprogrammed), from the data-memory tables of the TRM
# (SLUUBY2B section 13; the BQ76942/22/72 TRMs of the same family give the same values for the
# entries their search results showed: OCC 2/4, OCD2 delay 7, SCD delay 2, FET Options 0x0D,
# CHG FET A/B/C 0x98/0xD5/0x56, DSG FET C 0xE2, Enabled A 0x88 (SLUAA11B 3.1), UTD recovery 5,
# Recovery Time 3, OCC recovery -200 mA). (address, value, bytes); F4 as IEEE-754 bits.
# the table below, packed as bytes (offset from 0x9180 LE, length, value LE)
#     (0x91A8, 0x40EF41F2, 4),  # CC Gain 7.4768 (1 mOhm)
#     (0x91AC, 0x4A081C6A, 4),  # Capacity Gain 2230042.463
#     (0x9234, 0x2982, 2),  # Power Config: bit 8 SLEEP allowed
#     (0x9236, 0x00, 1),  # REG12 Config
#     (0x9237, 0x00, 1),  # REG0 Config
#     (0x9239, 0x00, 1),  # Comm Type: default (I2C, no CRC)
#     (0x9248, 20, 2),  # Sleep Current, mA
#     (0x924A, 5, 1),  # Voltage Time, s: the measurement interval in SLEEP
#     (0x924B, 500, 2),  # Wake Comparator Current, mA
#     (0x9261, 0x88, 1),  # Enabled Protections A: SCD, COV
#     (0x9262, 0x00, 1),
#     (0x9263, 0x00, 1),
#     (0x9265, 0x98, 1),  # CHG FET Protections A/B/C
#     (0x9266, 0xD5, 1),
#     (0x9267, 0x56, 1),
#     (0x9269, 0xE4, 1),  # DSG FET Protections A/B/C
#     (0x926A, 0xE6, 1),
#     (0x926B, 0xE2, 1),
#     (0x926D, 0xF800, 2),  # Default Alarm Mask
#     (0x926F, 0xFC, 1),  # SF Alert Mask A/B/C
#     (0x9270, 0xF7, 1),
#     (0x9271, 0xF4, 1),
#     (0x9273, 50, 2),  # Body Diode Threshold, mA
#     (0x9275, 50, 1), (0x9276, 74, 2), (0x927B, 2, 1),  # CUV 2.53 V, 244 ms, 101 mV
#     (0x9278, 86, 1), (0x9279, 74, 2), (0x927C, 2, 1),  # COV 4.35 V
#     (0x9280, 2, 1), (0x9281, 4, 1),  # OCC 4 mV, 19.8 ms
#     (0x9282, 4, 1), (0x9283, 1, 1),  # OCD1 8 mV, 9.9 ms
#     (0x9284, 3, 1), (0x9285, 7, 1),  # OCD2 6 mV, 29.7 ms
#     (0x9286, 0, 1), (0x9287, 2, 1),  # SCD 10 mV, 15 us
#     (0x9288, -200 & 0xFFFF, 2),  # OCC Recovery Threshold, mA
#     (0x928D, 200, 2),  # OCD Recovery Threshold, mA
#     (0x9294, 5, 1),  # SCD Recovery Time, s
#     (0x929A, 55, 1), (0x929B, 2, 1), (0x929C, 50, 1),  # OTC
#     (0x929D, 60, 1), (0x929E, 2, 1), (0x929F, 55, 1),  # OTD
#     (0x92A0, 80, 1), (0x92A1, 2, 1), (0x92A2, 65, 1),  # OTF
#     (0x92A6, 0, 1), (0x92A7, 2, 1), (0x92A8, 5, 1),  # UTC
#     (0x92A9, 0, 1), (0x92AA, 2, 1), (0x92AB, 5, 1),  # UTD
#     (0x92AF, 3, 1),  # Recovery Time, s
#     (0x92FD, 0x07, 1),  # TS1 Config: thermistor, cell temperature
#     (0x9303, 0x05, 1),  # DA Configuration: userA 1 mA, userV 10 mV
#     (0x9308, 0x0D, 1),  # FET Options: SFET, HOST_FET_EN, FET_CTRL_EN
_DM_DEFAULTS = b'(\x00\x04\xf2A\xef@,\x00\x04j\x1c\x08J\xb4\x00\x02\x82)\xb6\x00\x01\x00\xb7\x00\x01\x00\xb9\x00\x01\x00\xc8\x00\x02\x14\x00\xca\x00\x01\x05\xcb\x00\x02\xf4\x01\xe1\x00\x01\x88\xe2\x00\x01\x00\xe3\x00\x01\x00\xe5\x00\x01\x98\xe6\x00\x01\xd5\xe7\x00\x01V\xe9\x00\x01\xe4\xea\x00\x01\xe6\xeb\x00\x01\xe2\xed\x00\x02\x00\xf8\xef\x00\x01\xfc\xf0\x00\x01\xf7\xf1\x00\x01\xf4\xf3\x00\x022\x00\xf5\x00\x012\xf6\x00\x02J\x00\xfb\x00\x01\x02\xf8\x00\x01V\xf9\x00\x02J\x00\xfc\x00\x01\x02\x00\x01\x01\x02\x01\x01\x01\x04\x02\x01\x01\x04\x03\x01\x01\x01\x04\x01\x01\x03\x05\x01\x01\x07\x06\x01\x01\x00\x07\x01\x01\x02\x08\x01\x028\xff\r\x01\x02\xc8\x00\x14\x01\x01\x05\x1a\x01\x017\x1b\x01\x01\x02\x1c\x01\x012\x1d\x01\x01<\x1e\x01\x01\x02\x1f\x01\x017 \x01\x01P!\x01\x01\x02"\x01\x01A&\x01\x01\x00\'\x01\x01\x02(\x01\x01\x05)\x01\x01\x00*\x01\x01\x02+\x01\x01\x05/\x01\x01\x03}\x01\x01\x07\x83\x01\x01\x05\x88\x01\x01\r'
_DEFAULT_KEYS = (0x0414, 0x3672, 0xFFFF, 0xFFFF)  # unseal 1, 2, full access 1, 2 (TRM 9.3)
_SCD_MV = (10, 20, 40, 60, 80, 100, 125, 150, 175, 200, 250, 300, 350, 400, 450, 500)
_FULLACCESS = 1
_CB_ACTIVE_CELLS = 0x0083
# Cell Balancing Config defaults: Balancing Configuration 0 (no autonomous balancing, host commands
# accepted, none in SLEEP), Min/Max Cell Temp -20/60 C, Max Internal Temp 70 C, Interval 20 s,
# Max Cells 1 (LibreSolar raises it to 4: "instead of only 1 by default")
_CB_DEFAULTS = ((0x9335, 0), (0x9336, -20), (0x9337, 60), (0x9338, 70), (0x9339, 20), (0x933A, 1))
_UNSEALED = 2
_SEALED = 3
_MAH_US = 3600000000  # mA.us in one mAh


from hil.chips.bq76952_prot import Bq76952Prot


class Bq76952Fsm(Bq76952Prot):
    # --- power-on reset (a brown-out is one): RAM settings are lost ---------------------------
    def por(self):
        """A full reset: data memory back to its defaults (OTP unprogrammed), FULLACCESS, comm mode
        from OTP, FET_EN cleared (FETs off, FET test mode), POR set in Battery Status, the
        accumulated charge zeroed, no latched status."""
        dm = self.dm
        for i in range(_DM_SIZE):
            dm[i] = 0
        d = _DM_DEFAULTS
        j = 0
        while j < len(d):
            k = d[j] | (d[j + 1] << 8)
            n = d[j + 2]
            for i in range(n):
                dm[k + i] = d[j + 3 + i]
            j += 3 + n
        for a, v in _CB_DEFAULTS:  # Cell Balancing Config (TRM SLUUBY2B 13.3.11; addresses as LibreSolar's bq769x2_registers.h)
            dm[a - _DM_BASE] = v & 0xFF
        self.cb_cells = 0  # CB_ACTIVE_CELLS as the host wrote it (RAM: a POR clears it)
        self.cb_rejects = 0  # CB_ACTIVE_CELLS writes refused (checksum/length, CB_NO_CMD, too many cells)
        r = self.reg
        for i in range(_SUBCMD):
            r[i] = 0
        self.crc = self.otp_crc
        self.cfg_update = False
        self.sec = _FULLACCESS  # Security Settings default: no SEAL at power-up
        self.keys = list(_DEFAULT_KEYS)
        self._key_step = 0
        self.fet_en = False  # Manufacturing Status FET_EN: 0 = FET test mode, FETs off
        self.host_off = 0  # bit 0 CHG, bit 1 DSG forced off by ALL_FETS_OFF & co.
        self.sleep_cmd = True  # SLEEP_ENABLE / SLEEP_DISABLE
        self._shut_at = -1  # t_us of the last SHUTDOWN command (SEALED: the second one counts)
        self.sleeping = False
        self._sleep_t = 0
        self.por_flag = True
        self.alert_a = self.alert_b = self.alert_c = 0
        self.status_a = self.status_b = self.status_c = 0
        self.alarm = 0  # Alarm Status (latched); Alarm Enable from Default Alarm Mask
        self.alarm_enable = 0xF800
        self._tmr = {}  # protection -> us its trip condition has held; recovery timers as -name
        self.q = 0  # accumulated charge, mA.us of the measured (CC Gain applied) current
        self.q_t = 0  # accumulated time, us
        self._derive()
        self.chg_fet = self.dsg_fet = False
        self._fets()

    def dastatus6(self):
        """DASTATUS6's 32 response bytes into the subcommand buffer: accumulated charge as I4 whole
        userAh + U4 fraction (floor: a negative charge has a positive fraction), time in U4 s. Small
        frames (each a bytecode frame under ~11 words, which MicroPython keeps off the heap): the
        firmware reads it once a second and T1 and bench/rp2040's unix half count what the chips allocate."""
        self._charge4(self.q, _MAH_US * self._ua10 // 10)
        self._put4(_XBUF + 8, self.q_t // 1000000)
        r = self.reg
        for i in range(_XBUF + 12, _XBUF + 32):
            r[i] = 0
        return 32

    def _charge4(self, q, d):
        whole = q // d
        self._put4(_XBUF, whole)
        # the fraction rem * 2**32 // d in two 16-bit steps: that product passes 2**62 (a big int, on
        # the heap) on the 64-bit unix port once rem > 2**30
        rem = (q - whole * d) << 16
        self._put4(_XBUF + 4, ((rem // d) << 16) + ((rem % d) << 16) // d)

    def _put4(self, a, v):
        r = self.reg
        r[a] = v & 0xFF
        r[a + 1] = (v >> 8) & 0xFF
        r[a + 2] = (v >> 16) & 0xFF
        r[a + 3] = (v >> 24) & 0xFF

    def brownout(self):
        self.por()

    def shutdown(self):
        self.off = True

    def wake(self):
        """TS2 pulled low / charger on LD / RST_SHUT: SHUTDOWN ends with a full reset."""
        if self.off:
            self.off = False
            self.por()

    def _u(self, a, n=1):
        k = a - _DM_BASE
        v = 0
        for i in range(n):
            v |= self.dm[k + i] << (8 * i)
        return v

    def _i(self, a, n=1):
        v = self._u(a, n)
        return v - (1 << (8 * n)) if v >> (8 * n - 1) else v

    def _derive(self):
        """Everything the per-sample paths need from data memory, recomputed on every write (the
        part applies a change made outside CONFIG_UPDATE at once; in it, on exit)."""
        u = self._u
        bits = u(0x91A8, 4)
        m = (bits & 0x7FFFFF) | 0x800000
        e = ((bits >> 23) & 0xFF) - 150
        # reported = true * Rsense[mOhm] * CC Gain / 7.4768 (TRM 4.12), as a 2**20 fixed-point factor
        num = self.shunt_uohm * m * 10 << 20
        den = 74768
        if e >= 0:
            num <<= e
        else:
            den <<= -e
        self._gain20 = (num + den // 2) // den
        self._ua10 = (1, 10, 100, 1000)[self.dm[_DA - _DM_BASE] & 3]  # userA in 0.1 mA
        self.en = (u(0x9261), u(0x9262), u(0x9263))
        self.chg_mask = (u(0x9265), u(0x9266), u(0x9267))
        self.dsg_mask = (u(0x9269), u(0x926A), u(0x926B))
        self.fet_opt = u(0x9308)
        r = self.shunt_uohm
        # (name, status bit A, threshold in uV across the shunt (sign: + charge), delay us)
        self._oc = (
            ("scd", 0x80, -_SCD_MV[u(0x9286) & 15] * 1000, (u(0x9287) - 1) * 15),
            # OCC/OCD delay: (setting + 2) * 10/3 ms, which the TRM's "1 gives 10 ms, 2 gives 13.3 ms"
            ("ocd2", 0x40, -u(0x9284) * 2000, (u(0x9285) + 2) * 10000 // 3),
            ("ocd1", 0x20, -u(0x9282) * 2000, (u(0x9283) + 2) * 10000 // 3),
            ("occ", 0x10, u(0x9280) * 2000, (u(0x9281) + 2) * 10000 // 3),
        )
        self._r = r
        self._cov = (u(0x9278) * 506 + 5) // 10, (u(0x927C) * 506 + 5) // 10, u(0x9279, 2) * 3300
        self._cuv = (u(0x9275) * 506 + 5) // 10, (u(0x927B) * 506 + 5) // 10, u(0x9276, 2) * 3300
        self._temps = (  # (name, status bit B, threshold dC, recovery dC, delay us, over?)
            ("otc", 0x10, self._i(0x929A) * 10, self._i(0x929C) * 10, u(0x929B) * 1000000, True),
            ("otd", 0x20, self._i(0x929D) * 10, self._i(0x929F) * 10, u(0x929E) * 1000000, True),
            ("otf", 0x80, self._i(0x92A0) * 10, self._i(0x92A2) * 10, u(0x92A1) * 1000000, True),
            ("utc", 0x01, self._i(0x92A6) * 10, self._i(0x92A8) * 10, u(0x92A7) * 1000000, False),
            ("utd", 0x02, self._i(0x92A9) * 10, self._i(0x92AB) * 10, u(0x92AA) * 1000000, False),
        )
        self._recov_us = u(0x92AF) * 1000000
        self._scd_recov_us = u(0x9294) * 1000000
        self._occ_rec = self._i(0x9288, 2)
        self._ocd_rec = self._i(0x928D, 2)
        self._ts_cfg = (u(0x92FD), u(0x92FE), u(0x92FF))
        self._sleep_ok = bool(u(0x9234, 2) & 0x100)
        self._sleep_ma = self._i(0x9248, 2)
        self._vtime_us = u(0x924A) * 1000000
        self._wake_ma = self._i(0x924B, 2)
        self._bd_ma = self._i(0x9273, 2)
        # ALERT Pin Config while its PIN_FXN is 0b10 (ALERT), else 0: the pin not driven (alert_pin)
        self._alert_fxn = u(0x92FC) if u(0x92FC) & 3 == 2 else 0
        e = self.en[0]  # shunt uV inside which no enabled over-current condition can hold (advance)
        self._oc_quiet = (max([th for _, b, th, _ in self._oc if th <= 0 and e & b] or [-1 << 30]),
                          min([th for _, b, th, _ in self._oc if th > 0 and e & b] or [1 << 30]))
        self._one = [[0, 0]]  # advance()'s profile when none is given: one piece, reused
        # advance()'s quiet step: the bounds inside which no enabled protection is hit (see _slow)
        self._ocq_lo, self._ocq_hi = self._oc_quiet
        self._vm = u(0x9304, 2)  # Vcell Mode
        big = 1 << 30
        self._covq = self._cov[0] if e & 0x08 else big
        self._cuvq = self._cuv[0] if e & 0x04 else -big
        eb = self.en[1]
        t = self._temps
        self._tchi = min([x[2] for x in t if x[5] and x[0] != "otf" and eb & x[1]] or [big])
        self._tclo = max([x[2] for x in t if not x[5] and eb & x[1]] or [-big])
        self._tfhi = t[2][2] if eb & t[2][1] else big  # OTF
        self._tsc = tuple(k for k in range(3) if self._ts_cfg[k] == 0x07)
        self._tsf = tuple(k for k in range(3) if self._ts_cfg[k] == 0x0F)
        # balancing: (config, min cell dC, max cell dC, max internal dC, max cells)
        self._cb = (u(0x9335), self._i(0x9336) * 10, self._i(0x9337) * 10, self._i(0x9338) * 10, u(0x933A))

    def _subcommand(self, cmd):
        self.subcommands += 1
        r = self.reg
        n = 0
        sec = self.sec
        if self._keyed(cmd):
            pass
        elif cmd == 0x0001:  # DEVICE_NUMBER
            r[_XBUF] = 0x95
            r[_XBUF + 1] = 0x76
            n = 2
        elif cmd == 0x0002:  # FW_VERSION: device number, firmware version, build (big-endian)
            for i, b in enumerate((0x76, 0x95, 0x01, 0x01, 0x00, 0x38)):
                r[_XBUF + i] = b
            n = 6
        elif cmd == 0x0090 and sec == _FULLACCESS:  # SET_CFGUPDATE: FULLACCESS only
            self.cfg_update = True
        elif cmd == 0x0092 and self.cfg_update:  # EXIT_CFGUPDATE: POR is cleared on exit (TRM 12.2.?)
            self.cfg_update = False
            self.por_flag = False
            self._derive()
        elif cmd == 0x0030 and sec != _SEALED:  # SEAL
            self.sec = _SEALED
        elif cmd == 0x0057:  # MANUFACTURINGSTATUS: bit 4 FET_EN
            r[_XBUF] = 0x10 if self.fet_en else 0
            r[_XBUF + 1] = 0
            n = 2
        elif cmd == 0x0022 and sec != _SEALED:  # FET_ENABLE toggles FET_EN
            self.fet_en = not self.fet_en
        elif cmd == 0x0035 and sec == _FULLACCESS:  # SECURITY_KEYS (read)
            for i in range(4):
                r[_XBUF + 2 * i] = self.keys[i] & 0xFF
                r[_XBUF + 2 * i + 1] = self.keys[i] >> 8
            n = 8
        elif cmd == 0x0076:  # DASTATUS6: accumulated charge (I4 userAh + U4 fraction), time (U4 s)
            n = self.dastatus6()
        elif cmd == _CB_ACTIVE_CELLS:  # read: the cells being balanced (any security mode, SLUAA81A)
            m = self.bal_mask
            r[_XBUF] = m & 0xFF
            r[_XBUF + 1] = m >> 8
            n = 2
        elif cmd == 0x0082:  # RESET_PASSQ
            self.q = self.q_t = 0
        elif cmd == 0x0093:  # DSG_PDSG_OFF
            self.host_off |= 2
        elif cmd == 0x0094:  # CHG_PCHG_OFF
            self.host_off |= 1
        elif cmd == 0x0095:  # ALL_FETS_OFF
            self.host_off = 3
        elif cmd == 0x0096:  # ALL_FETS_ON: allows them (protections still rule)
            self.host_off = 0
        elif cmd == 0x0099:  # SLEEP_ENABLE
            self.sleep_cmd = True
        elif cmd == 0x009A:  # SLEEP_DISABLE
            self.sleep_cmd = False
            self.sleeping = False
        elif cmd == 0x0010:  # SHUTDOWN: the part answers, then powers down at its next step
            # (after Shutdown Command Delay; wake() brings it back via POR). SEALED it takes two in a
            # row within 4 s (TRM SLUUBY2B subcommand table); the chip's clock is t_us (advance())
            if sec != _SEALED or (self._shut_at >= 0 and self.t_us - self._shut_at <= 4000000):
                self._shut = True
            self._shut_at = self.t_us
        elif cmd == 0x0012:  # RESET
            self.por()
            return
        elif cmd == 0x29BC:  # SWAP_COMM_MODE: to the mode Comm Type selects (0 = default, no CRC)
            ct = self._u(0x9239)
            self.crc = ct in (0x11, 0x12) or (ct in (0, 0xFF) and self.otp_crc)
        elif _DM_BASE <= cmd < _DM_BASE + _DM_SIZE and sec != _SEALED:  # data-memory read, 32 bytes
            k = cmd - _DM_BASE
            for i in range(32):
                r[_XBUF + i] = self.dm[k + i] if k + i < _DM_SIZE else 0
            n = 32
        self._fets()
        self._respond(n)

    def _keyed(self, word):
        """Unseal / full-access keys: two words in consecutive writes to 0x3E (TRM 9.3). A key
        also looks like a subcommand to the interface; the part then answers nothing for it."""
        k = self.keys
        step = self._key_step
        self._key_step = 0
        if self.sec == _SEALED:
            if step == 1 and word == k[1]:
                self.sec = _UNSEALED
                return True
            if word == k[0]:
                self._key_step = 1
                return True
        elif self.sec == _UNSEALED:
            if step == 2 and word == k[3]:
                self.sec = _FULLACCESS
                return True
            if word == k[2]:
                self._key_step = 2
                return True
        return False

    # --- host-controlled balancing (CB_ACTIVE_CELLS, 0x0083) ----------------------------------
    def cb_write(self, mask):
        """A CB_ACTIVE_CELLS write that passed the checksum/length check: taken in every security mode
        (SLUAA81A), ignored with Balancing Configuration CB_NO_CMD (SLUUBY2B 13.3.11). More cells than
        Cell Balance Max Cells: refused, the previous mask stays (our reading; the TRM names the limit,
        not what the part does past it). No adjacent-cell rule: the TRM states none (LibreSolar's
        driver refuses adjacent cells itself; so does the firmware)."""
        cfg, _, _, _, most = self._cb
        mask &= 0xFFFF
        n = 0
        for k in range(16):
            n += mask >> k & 1
        if cfg & 0x10 or n > most:
            self.cb_rejects += 1
            return
        self.cb_cells = mask

    @property
    def bal_mask(self):
        """The balancing FETs on now (bit k = cell input k+1): what CB_ACTIVE_CELLS reads and what the
        plant bleeds. None in SLEEP unless Balancing Configuration CB_SLEEP, none while off."""
        if self.off or (self.sleeping and not self._cb[0] & 0x04):
            return 0
        return self.cb_cells

    def _cb_temps(self, cmin, cmax):
        """Balancing stops outside Cell Balance Min/Max Cell Temp or above Max Internal Temp
        (SLUUBY2B 11: the limits; that they also end host-controlled balancing is our reading)."""
        if not self.cb_cells:
            return
        _, lo, hi, imax, _ = self._cb
        die = (self.reg[0x68] | (self.reg[0x69] << 8)) - 2732
        if (cmax != -9999 and cmax > hi) or (cmin != 9999 and cmin < lo) or die > imax:
            self.cb_cells = 0

    # --- status registers --------------------------------------------------------------------
    @property
    def battery_status(self):
        b = 1 if self.cfg_update else 0
        if self._sleep_ok and self.sleep_cmd:
            b |= 0x0004  # SLEEP_EN
        if self.por_flag:
            b |= 0x0008
        b |= self.sec << 8
        if self.status_a | self.status_b | self.status_c:
            b |= 0x0800  # SS
        if self.sleeping:
            b |= 0x8000
        return b

    @property
    def fet_status(self):
        return (1 if self.chg_fet else 0) | (4 if self.dsg_fet else 0) | (0x40 if self.alert else 0)

    @property
    def alert(self):
        """The ALERT pin asserted (active low on the board): Alarm Status & Alarm Enable."""
        return bool(self.alarm & self.alarm_enable)

    @property
    def alert_pin(self):
        """The level the MCU's ALERT pin reads, 1 high or 0 low, on a board that pulls the net up
        (README wiring: open drain, pull-up to 3V3). The part drives the pin only as ALERT (ALERT Pin
        Config PIN_FXN = 0b10; the family TRMs' default 0x00 leaves it unused, so a part fresh from a
        POR never drives it) and while powered: asserted (Alarm Status & Alarm Enable) to its active
        level, low with OPT5 (bit 7) set; not asserted to the other one only with OPT1 (bit 3) set,
        else it floats and the pull-up holds it high. The one place the pin's polarity is decided:
        hal_sim and hal_fake read this level as pwfw.hal_board reads the real pin (low = asserted), the
        emulated RP2040 drives it on the board's alert_pin. Read every sample: no allocation (the
        configuration is taken from data memory by _derive)."""
        c = self._alert_fxn
        if not c or self.off:
            return 1
        if self.alarm & self.alarm_enable:
            return 0 if c & 0x80 else 1
        return 0 if c & 0x88 == 0x08 else 1

    def _status(self):
        r = self.reg
        r[0x02] = self.alert_a
        r[0x03] = self.status_a
        r[0x04] = self.alert_b
        r[0x05] = self.status_b
        r[0x06] = self.alert_c
        r[0x07] = self.status_c
        b = self.battery_status
        r[0x12] = b & 0xFF
        r[0x13] = b >> 8
        raw = 0
        if self.status_a:
            raw |= 0x4000  # SSA
        if self.status_b | self.status_c:
            raw |= 0x8000  # SSBC
        if (self.alert_a & self._u(0x926F)) | (self.alert_b & self._u(0x9270)) | (self.alert_c & self._u(0x9271)):
            raw |= 0x1000  # MSK_SFALERT
        if not self.chg_fet:
            raw |= 0x0040  # XCHG
        if not self.dsg_fet:
            raw |= 0x0020  # XDSG
        self.alarm |= raw  # latched until the host writes 1s to Alarm Status
        r[0x62] = self.alarm & 0xFF
        r[0x63] = self.alarm >> 8
        r[0x64] = raw & 0xFF
        r[0x65] = raw >> 8
        r[0x66] = self.alarm_enable & 0xFF
        r[0x67] = self.alarm_enable >> 8
        r[0x7F] = self.fet_status

    def _fet_key(self):
        """What advance() can change of _fets()'s inputs, as one int: the status and alert bits, SLEEP,
        and on which side of Body Diode Threshold the current is (every other input changes only by a
        command or a write, which call _fets() themselves)."""
        i = self.measured_ma(self.i_ma)
        b = self._bd_ma
        return (self.status_a | self.status_b << 8 | self.status_c << 16 | self.alert_a << 24
                | self.alert_b << 32 | self.alert_c << 40 | (1 if self.sleeping else 0) << 48
                | (1 if i > b else 2 if -i > b else 0) << 49 | (1 if self.off else 0) << 51)

    def _fets(self):
        """CHG/DSG driver state: FET_EN (autonomous control), FET_CTRL_EN, no host OFF command, not
        in CONFIG_UPDATE, and no Safety Status bit that the CHG/DSG FET Protections masks select."""
        on = self.fet_en and self.fet_opt & 0x08 and not self.cfg_update and not self.off
        sa, sb, sc = self.status_a, self.status_b, self.status_c
        cm, dm = self.chg_mask, self.dsg_mask
        chg_prot = (sa & cm[0]) | (sb & cm[1]) | (sc & cm[2])
        dsg_prot = (sa & dm[0]) | (sb & dm[1]) | (sc & dm[2])
        self.chg_fet = bool(on and not chg_prot and not self.host_off & 1 and not (self.sleeping and not self.fet_opt & 2))
        self.dsg_fet = bool(on and not dsg_prot and not self.host_off & 2)
        if on and self.fet_opt & 1:  # series FETs: body diode protection (TRM 6.x)
            i = self.measured_ma(getattr(self, "i_ma", 0))
            if self.dsg_fet and not self.chg_fet and not self.host_off & 1 and -i > self._bd_ma:
                self.chg_fet = True  # discharging through CHG's body diode: turn it on
            if self.chg_fet and not self.dsg_fet and not self.host_off & 2 and i > self._bd_ma:
                self.dsg_fet = True
        self._fkey = self._fet_key()
        self._status()

    def passes(self, i_ma):
        """The current the power path lets through for what the plant asks (path_passes)."""
        return path_passes(i_ma, self.chg_fet, self.dsg_fet)


def path_passes(i, chg, dsg):
    """The one rule of the AFE's power path, for the chip and the plant (hil/plant.py): charge (i > 0)
    needs CHG on, discharge needs DSG on. Series FETs: the other FET's body diode conducts (DSG off
    still lets charge flow, CHG off still lets discharge flow); parallel: separate paths, the same
    rule per direction."""
    if i > 0:
        return i if chg else 0
    return i if dsg else 0
