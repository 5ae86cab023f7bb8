# BQ76952 register codes <-> engineering units: the one table of conversions (firmware, host tools,
# simulated chip and tests all use it). Integers only; references are TI's BQ76952 Technical
# Reference Manual SLUUBY2B ("TRM", section 13 = the data-memory tables) and data sheet SLUSE13B.
# Every encoder clamps to the register's range and the decoder gives back what the part will do,
# so a caller can report the value actually configured (docs/hardware.md, "AFE protections").
from pwfw.compat import const

# --- data-memory addresses (TRM 13.2-13.6; the same in LibreSolar's bq769x2_registers.h) ----------
_CC_GAIN = const(0x91A8)  # F4, Calibration:Current:CC Gain
_CAP_GAIN = const(0x91AC)  # F4, Calibration:Current:Capacity Gain
_POWER_CONFIG = const(0x9234)  # H2, bit 8 SLEEP (sleep allowed)
_REG12_CONFIG = const(0x9236)  # H1, bit 0 REG1_EN, bits 3:1 REG1V
_REG0_CONFIG = const(0x9237)  # H1, bit 0 REG0_EN
_COMM_TYPE = const(0x9239)  # U1
_ALERT_PIN_CONFIG = const(0x92FC)  # H1: PIN_FXN bits 1:0, OPT5..0 bits 7:2
_TS1_CONFIG = const(0x92FD)  # H1 (TS2 0x92FE, TS3 0x92FF)
DA_CONFIG = const(0x9303)  # H1, bits 1:0 userA, bit 2 userV = 10 mV
VCELL_MODE = const(0x9304)  # H2
_FET_OPTIONS = const(0x9308)  # H1
_BODY_DIODE_TH = const(0x9273)  # I2, mA
_DEFAULT_ALARM_MASK = const(0x926D)  # H2
_ENABLED_A = const(0x9261)  # H1: Enabled Protections A (B 0x9262, C 0x9263)
_CHG_FET_A = const(0x9265)  # H1: CHG FET Protections A (B 0x9266, C 0x9267)
_DSG_FET_A = const(0x9269)  # H1: DSG FET Protections A (B 0x926A, C 0x926B)
_CUV_TH = const(0x9275)  # U1 50.6 mV; CUV delay 0x9276 U2; CUV hysteresis 0x927B U1
_COV_TH = const(0x9278)  # U1 50.6 mV; COV delay 0x9279 U2; COV hysteresis 0x927C U1
_OCC_TH = const(0x9280)  # U1 2 mV; OCC delay 0x9281 U1
_OCD1_TH = const(0x9282)  # U1 2 mV; OCD1 delay 0x9283 U1
_OCD2_TH = const(0x9284)  # U1 2 mV; OCD2 delay 0x9285 U1
_SCD_TH = const(0x9286)  # U1 table index; SCD delay 0x9287 U1
_OCC_RECOV = const(0x9288)  # I2 mA
_OCD_RECOV = const(0x928D)  # I2 mA
_SCD_RECOV_TIME = const(0x9294)  # U1 s
_OTC_TH = const(0x929A)  # I1 degC, then delay U1 s, recovery I1 degC (OTD 0x929D, OTF 0x92A0)
_UTC_TH = const(0x92A6)  # (UTD 0x92A9)
_RECOVERY_TIME = const(0x92AF)  # U1 s

# Safety Alert/Status A bits (TRM 12.2.2; LibreSolar union bq769x2_reg_safety_a)
_SCD = const(0x80)
_OCD2 = const(0x40)
_OCD1 = const(0x20)
_OCC = const(0x10)
_COV = const(0x08)
_CUV = const(0x04)
# Safety Alert/Status B bits
_OTF = const(0x80)
_OTINT = const(0x40)
_OTD = const(0x20)
_OTC = const(0x10)
_UTINT = const(0x04)
_UTD = const(0x02)
_UTC = const(0x01)


def _export():
    # the names pwfw.afe_report and the tests read (u.COV_TH), set from one string: as module globals
    # the .mpy would intern each name when the AFE set-up loads this module at boot, and an interned
    # name is never freed (docs/architecture.md, Memory)
    g = globals()
    for n, v in zip("CC_GAIN POWER_CONFIG CUV_TH COV_TH OCC_TH OCD1_TH OCD2_TH SCD_TH SCD_RECOV_TIME "
                    "OTC_TH UTC_TH RECOVERY_TIME SCD OCD1 OCC COV CUV OTC".split(),
                    (_CC_GAIN, _POWER_CONFIG, _CUV_TH, _COV_TH, _OCC_TH, _OCD1_TH, _OCD2_TH, _SCD_TH, _SCD_RECOV_TIME,
                     _OTC_TH, _UTC_TH, _RECOVERY_TIME, _SCD, _OCD1, _OCC, _COV, _CUV, _OTC)):
        g[n] = v


_export()


def __getattr__(name):  # PEP 562: tells the type checker the names above exist at run time
    raise AttributeError(name)

# --- COV / CUV thresholds: 50.6 mV steps (TRM 13.6.1/13.6.2 "Threshold ... 50.6 mV") -------------
_COV_MIN = const(20)
_COV_MAX = const(110)
CUV_MIN = const(20)
CUV_MAX = const(90)
_HYST_MIN = const(2)
_HYST_MAX = const(20)


def _clamp(v, lo, hi):
    return lo if v < lo else hi if v > hi else v


def _rdiv(a, b):
    """a / b rounded half away from zero (b > 0)."""
    return (a + b // 2) // b if a >= 0 else -((-a + b // 2) // b)


def cell_code(mv, lo=_COV_MIN, hi=_COV_MAX):
    """Cell threshold in mV -> COV/CUV code (nearest 50.6 mV step, clamped to lo..hi)."""
    return _clamp(_rdiv(mv * 10, 506), lo, hi)


def cell_mv(code):
    """COV/CUV code -> threshold in mV, rounded (86 -> 4352 mV: the COV default, 4.3516 V)."""
    return _rdiv(code * 506, 10)


def hyst_code(mv):
    """Recovery hysteresis in mV -> code, 50.6 mV steps, 2..20."""
    return _clamp(_rdiv(mv * 10, 506), _HYST_MIN, _HYST_MAX)


# --- delays: each protection has its own unit ------------------------------------------------
# COV/CUV Delay: U2 1..2047 in 3.3 ms (TRM 13.6.1/2). The TRM states the 6.6 ms offset for OCC/OCD
# only; LibreSolar (tests/bms_ic/bq769x2 test_apply_cell_uvp) uses code * 3.3 ms, as we do.
def cell_delay_code(ms):
    return _clamp(_rdiv(ms * 10, 33), 1, 2047)


def cell_delay_us(code):
    return code * 3300


# OCC/OCD1/_OCD2 Delay: U1 1..127, "units of 3.3 ms with a 6.6 ms offset: 1 gives 10 ms, 2 gives
# 13.3 ms" (TRM 13.6.3-13.6.5). Those two examples are exact for a unit of 10/3 ms (and the table's
# "3.3 ms" its rounding), so we use 10/3 ms; LibreSolar uses 3.3 ms (at most 1 % apart).
def oc_delay_code(ms):
    return _clamp(_rdiv(ms * 3 - 20, 10), 1, 127)


def oc_delay_us(code):
    return (code + 2) * 10000 // 3


# SCD Delay: U1 1..31, "1 = no delay, other values (value - 1) * 15 us" (TRM 13.6.6).
def scd_delay_code(us):
    return _clamp(_rdiv(us, 15) + 1, 1, 31)


def scd_delay_us(code):
    return (code - 1) * 15


# --- current thresholds: 2 mV steps across the shunt (TRM 13.6.3-13.6.5) ----------------------
OCC_MAX = const(62)
_OCD_MAX = const(100)


def oc_code(ma, shunt_uohm, hi=_OCD_MAX):
    """Current in mA -> OCC/OCD code: the shunt voltage (uV = mA * uOhm / 1000) in 2 mV steps."""
    return _clamp(_rdiv(ma * shunt_uohm, 2000000), 2, hi)


def oc_ma(code, shunt_uohm):
    """OCC/OCD code -> current threshold in mA for this shunt (2 mV / 0.5 mOhm = 4 A a step)."""
    return _rdiv(code * 2000000, shunt_uohm)


# SCD Threshold: U1 0..15, an index into this table of shunt voltages (TRM 13.6.6; LibreSolar
# bq769x2_scd_thresholds[]).
SCD_MV = (10, 20, 40, 60, 80, 100, 125, 150, 175, 200, 250, 300, 350, 400, 450, 500)


def scd_code(ma, shunt_uohm):
    """The highest table entry not above the requested current (never a later trip than asked);
    below the first entry, the first (as LibreSolar's configure_dis_scp)."""
    uv = ma * shunt_uohm // 1000
    code = 0
    for i in range(len(SCD_MV)):
        if SCD_MV[i] * 1000 <= uv:
            code = i
    return code


def scd_ma(code, shunt_uohm):
    return _rdiv(SCD_MV[code] * 1000000, shunt_uohm)


# --- temperatures: I1 degC thresholds and recoveries, U1 s delays (TRM 13.6.8-13.6.14) ---------
def temp_code(dc):
    """0.1 degC -> the I1 degC code, -40..120."""
    return _clamp(_rdiv(dc, 10), -40, 120)


def temp_dc(code):
    return (code - 256 if code > 127 else code) * 10


# --- DA Configuration (TRM 13.3.2.19): bits 1:0 userA, bit 2 userV --------------------------------
USER_A_UA = (100, 1000, 10000, 100000)  # uA per count for USA = 0..3 (0.1, 1, 10, 100 mA)


def da_config(max_ma):
    """DA Configuration for a pack whose largest current is max_ma: the finest userA whose signed
    16-bit CC2 range (32767 counts) covers it; userV = 10 mV (bit 2: a stack over 32.767 V)."""
    usa = 1 if max_ma <= 32767 else 2 if max_ma <= 327670 else 3
    return 0x04 | usa


def user_a_ua(da):
    return USER_A_UA[da & 3]


# --- CC Gain / Capacity Gain (TRM 4.12, data sheet 8.3.4: CC Gain = 7.4768 / Rsense[mOhm],
# Capacity Gain = CC Gain * 298261.6178), IEEE-754 single precision, little-endian in memory -----
def f32_bits(num, den):
    """num/den (both > 0) -> IEEE-754 single-precision bits, rounded to nearest even, from
    integers only (no float, so the result is the same on every port)."""
    e = 0
    while num >= den << 24:
        den <<= 1
        e += 1
    while num < den << 23:
        num <<= 1
        e -= 1
    q, r = divmod(num, den)
    if 2 * r > den or (2 * r == den and q & 1):
        q += 1
        if q == 1 << 24:
            q >>= 1
            e += 1
    return ((e + 150) << 23) | (q & 0x7FFFFF)


def f32_parts(bits):
    """IEEE-754 single (normal, positive) -> (mantissa with the hidden bit, e): value = m * 2**e."""
    return (bits & 0x7FFFFF) | 0x800000, ((bits >> 23) & 0xFF) - 150


def cc_gain_bits(shunt_uohm):
    """CC Gain for a shunt in uOhm: 7.4768 / (R / 1000) = 74768 / (10 R)."""
    return f32_bits(74768, 10 * shunt_uohm)


def cap_gain_bits(shunt_uohm):
    """Capacity Gain: 74768 / (10 R) * 2982616178 / 10**4 (the TRM's 298261.6178)."""
    return f32_bits(74768 * 2982616178, 100000 * shunt_uohm)


def le(v, n):
    """v as n little-endian bytes (data memory is little-endian; I1/I2 two's complement)."""
    b = bytearray(n)
    for i in range(n):
        b[i] = (v >> (8 * i)) & 0xFF
    return bytes(b)


# --- the board's configuration, as data-memory writes ---------------------------------------------
# Bit values below from the TRM's data-memory tables; where TI's own example code (SLUAA11B,
# "Simple Code Examples") writes the same register, the value agrees: REG0 0x01, REG12 0x0D (REG1
# on at 3.3 V), TS1 0x07 (thermistor, 18 kOhm pull-up, cell temperature), FET Options 0x0D.
_TS_CELL = const(0x07)
_TS_FET = const(0x0F)  # a thermistor used as FET temperature (LibreSolar bms_c1.dts)
SECURITY_KEYS = const(0x0035)  # subcommand: unseal step 1/2, full-access step 1/2 (U2 each)


def _e(name, addr, v, n):
    return (name, addr, le(v, n))


def plan(board, cells, mask):
    """[(name, address, bytes)]: every data-memory setting the board needs, in write order.
    `mask` is the Vcell Mode bit mask of the inputs in use."""
    return list(entries(board, cells, mask))


def entries(board, cells, mask):
    """plan() one entry at a time (a generator: the firmware's set-up never holds the whole list,
    a board's heap is tight; pwfw.bq76952_setup walks it twice, to write and to read back)."""
    from pwfw.afe_config import FET_DEFAULTS, FET_TOPOLOGIES, afe_protect

    p = afe_protect(board)
    afe = board.get("afe") or {}
    fets = dict(FET_DEFAULTS)
    fets.update(afe.get("fets") or {})
    if fets["topology"] not in FET_TOPOLOGIES:
        raise ValueError("afe.fets.topology %r is not one of series, parallel" % (fets["topology"],))
    cur = board.get("current") or {}
    r = cur.get("shunt_uohm")
    if type(r) is not int or r <= 0:
        raise ValueError("current.shunt_uohm missing: the AFE's CC Gain and current limits need it")
    yield _e("vcell_mode", VCELL_MODE, mask, 2)
    yield _e("da_config", DA_CONFIG, da_config(cur.get("max_ma", 32767)), 1)
    yield _e("cc_gain", _CC_GAIN, cc_gain_bits(r), 4)
    yield _e("cap_gain", _CAP_GAIN, cap_gain_bits(r), 4)
    # Power Config default 0x2982; bit 8 (SLEEP) allows SLEEP mode (LibreSolar writes 0x2882 to
    # disable it). Off unless the board asks: docs/hardware.md, "Sleep".
    yield _e("power_config", _POWER_CONFIG, 0x2982 if p["sleep"] else 0x2882, 2)
    yield _e("reg0_config", _REG0_CONFIG, 0x01, 1)
    yield _e("reg12_config", _REG12_CONFIG, 0x0D, 1)
    ts = board.get("bq_ts") or []
    fet_ts = afe.get("fet_ts")
    for k in (1, 2, 3):
        yield _e("ts%d_config" % k, _TS1_CONFIG + k - 1, _TS_FET if k == fet_ts else _TS_CELL if k in ts else 0, 1)
    sfet = 1 if fets["topology"] == "series" else 0
    # FET Options: SFET, HOST_FET_EN (bit 2: host commands may turn FETs off), FET_CTRL_EN (bit 3:
    # the device drives them), PDSG_EN (bit 4) when a pre-discharge FET is fitted
    yield _e("fet_options", _FET_OPTIONS, sfet | 0x04 | 0x08 | (0x10 if fets["pdsg"] else 0), 1)
    yield _e("enabled_a", _ENABLED_A, _SCD | _OCD2 | _OCD1 | _OCC | _COV | _CUV, 1)
    yield _e("enabled_b", _ENABLED_A + 1, _OTC | _OTD | _UTC | _UTD | (_OTF if fet_ts else 0), 1)
    yield _e("enabled_c", _ENABLED_A + 2, 0x00, 1)  # no latches (COVL/OCDL/SCDL), no host watchdog
    yield _e("chg_fet_a", _CHG_FET_A, _SCD | _OCC | _COV, 1)  # TRM: only 0x98 or 0x18 act immediately
    yield _e("chg_fet_b", _CHG_FET_A + 1, _OTF | _OTINT | _OTC | _UTINT | _UTC, 1)
    yield _e("dsg_fet_a", _DSG_FET_A, _SCD | _OCD2 | _OCD1 | _CUV, 1)
    yield _e("dsg_fet_b", _DSG_FET_A + 1, _OTF | _OTINT | _OTD | _UTINT | _UTD, 1)
    yield _e("default_alarm_mask", _DEFAULT_ALARM_MASK, 0xF800, 2)  # ALERT on safety/PF status
    # ALERT Pin Config: PIN_FXN 0b10 = ALERT, OPT5 (bit 7) = active-low, OPT1 (bit 3) = 0: hi-Z when
    # not asserted, OPT3 = 0, no internal pull-up/-down: open drain with the board's pull-up to 3V3, which
    # the MCU reads low while asserted. The family TRMs give 0x00 (pin unused) as the default, so an
    # unconfigured (or reset) part never drives it (docs/hardware.md, "Supervision").
    yield _e("alert_pin_config", _ALERT_PIN_CONFIG, 0x82, 1)
    yield _e("cuv", _CUV_TH, cell_code(p["cuv_mv"], CUV_MIN, CUV_MAX), 1)
    yield _e("cuv_delay", _CUV_TH + 1, cell_delay_code(p["cuv_ms"]), 2)
    yield _e("cuv_hyst", 0x927B, hyst_code(p["cuv_hyst_mv"]), 1)
    yield _e("cov", _COV_TH, cell_code(p["cov_mv"]), 1)
    yield _e("cov_delay", _COV_TH + 1, cell_delay_code(p["cov_ms"]), 2)
    yield _e("cov_hyst", 0x927C, hyst_code(p["cov_hyst_mv"]), 1)
    yield _e("occ", _OCC_TH, oc_code(p["occ_ma"], r, OCC_MAX), 1)
    yield _e("occ_delay", _OCC_TH + 1, oc_delay_code(p["occ_ms"]), 1)
    yield _e("ocd1", _OCD1_TH, oc_code(p["ocd1_ma"], r), 1)
    yield _e("ocd1_delay", _OCD1_TH + 1, oc_delay_code(p["ocd1_ms"]), 1)
    yield _e("ocd2", _OCD2_TH, oc_code(p["ocd2_ma"], r), 1)
    yield _e("ocd2_delay", _OCD2_TH + 1, oc_delay_code(p["ocd2_ms"]), 1)
    yield _e("scd", _SCD_TH, scd_code(p["scd_ma"], r), 1)
    yield _e("scd_delay", _SCD_TH + 1, scd_delay_code(p["scd_us"]), 1)
    yield _e("scd_recov_time", _SCD_RECOV_TIME, p["scd_recov_s"], 1)
    for name, a in (("otc", _OTC_TH), ("otd", _OTC_TH + 3), ("otf", _OTC_TH + 6), ("utc", _UTC_TH), ("utd", _UTC_TH + 3)):
        yield _e(name, a, temp_code(p[name + "_dc"]), 1)
        yield _e(name + "_delay", a + 1, p["temp_s"], 1)
        yield _e(name + "_recov", a + 2, temp_code(p[name + "_recov_dc"]), 1)
    yield _e("recovery_time", _RECOVERY_TIME, p["recovery_s"], 1)
    # host-controlled balancing (docs/hardware.md "Cell balancing"): no autonomous balancing, SLEEP
    # held off while cells bleed (CB_NOSLEEP with CB_SLEEP, SLUUBY2B 13.3.11), as many cells at once
    # as the firmware's policy may ask for (the part's default is 1)
    yield _e("cb_config", 0x9335, 0x0C, 1)
    yield _e("cb_max_cells", 0x933A, (board.get("limits") or {}).get("bal_max_cells", 4), 1)
    if afe.get("crc"):
        yield _e("comm_type", _COMM_TYPE, 0x12, 1)  # I2C fast with CRC, applied by SWAP_COMM_MODE

