# The BQ76952's protections by name (pwfw.afe_config.AFE_KEYS): where each lives in data memory and
# how its code reads in engineering units, with pwfw.bq76952_units' conversions (the one table of
# them). Used by the `afe` command (pwfw.afe_report) and the hard limits (pwfw.limits: what the part
# applies); pwfw.bq76952_units.entries() writes the same addresses (a T0 test holds them together).
# Loaded only by it, and dropped after it.
from pwfw.bq76952_units import (COV_TH, CUV_TH, OCC_TH, OCD1_TH, OCD2_TH, OTC_TH,
                                POWER_CONFIG, RECOVERY_TIME, SCD_MV, SCD_RECOV_TIME, SCD_TH, UTC_TH,
                                cell_delay_us, cell_mv, oc_delay_us, oc_ma, scd_delay_us, scd_ma, temp_dc)
from pwfw.compat import const

K_CELL = const(0)  # U1, 50.6 mV steps: COV/CUV thresholds and hystereses
K_CELL_DLY = const(1)  # U2, COV/CUV delay
K_OC = const(2)  # U1, 2 mV across the shunt
K_OC_DLY = const(3)  # U1, OCC/OCD delay
K_SCD = const(4)  # U1, SCD table index
K_SCD_DLY = const(5)  # U1, SCD delay (us)
K_RAW = const(6)  # U1, seconds as stored
K_TEMP = const(7)  # I1, degC
K_SLEEP = const(8)  # H2 Power Config, bit 8

AFE_REGS = (
    ("cov_mv", COV_TH, 1, K_CELL),
    ("cov_hyst_mv", 0x927C, 1, K_CELL),
    ("cov_ms", COV_TH + 1, 2, K_CELL_DLY),
    ("cuv_mv", CUV_TH, 1, K_CELL),
    ("cuv_hyst_mv", 0x927B, 1, K_CELL),
    ("cuv_ms", CUV_TH + 1, 2, K_CELL_DLY),
    ("occ_ma", OCC_TH, 1, K_OC),
    ("occ_ms", OCC_TH + 1, 1, K_OC_DLY),
    ("ocd1_ma", OCD1_TH, 1, K_OC),
    ("ocd1_ms", OCD1_TH + 1, 1, K_OC_DLY),
    ("ocd2_ma", OCD2_TH, 1, K_OC),
    ("ocd2_ms", OCD2_TH + 1, 1, K_OC_DLY),
    ("scd_ma", SCD_TH, 1, K_SCD),
    ("scd_us", SCD_TH + 1, 1, K_SCD_DLY),
    ("scd_recov_s", SCD_RECOV_TIME, 1, K_RAW),
    ("otc_dc", OTC_TH, 1, K_TEMP),
    ("otc_recov_dc", OTC_TH + 2, 1, K_TEMP),
    ("otd_dc", OTC_TH + 3, 1, K_TEMP),
    ("otd_recov_dc", OTC_TH + 5, 1, K_TEMP),
    ("otf_dc", OTC_TH + 6, 1, K_TEMP),
    ("otf_recov_dc", OTC_TH + 8, 1, K_TEMP),
    ("utc_dc", UTC_TH, 1, K_TEMP),
    ("utc_recov_dc", UTC_TH + 2, 1, K_TEMP),
    ("utd_dc", UTC_TH + 3, 1, K_TEMP),
    ("utd_recov_dc", UTC_TH + 5, 1, K_TEMP),
    ("temp_s", OTC_TH + 1, 1, K_RAW),  # the five temperature delays are written alike: OTC's stands for them
    ("recovery_s", RECOVERY_TIME, 1, K_RAW),
    ("sleep", POWER_CONFIG, 2, K_SLEEP),
)


def decode(kind, code, shunt_uohm):
    """A register's code -> the AFE_KEYS unit (delays rounded to the key's unit); None for a code the
    part would not take (an SCD index past the table)."""
    if kind == K_CELL:
        return cell_mv(code)
    if kind == K_CELL_DLY:
        return (cell_delay_us(code) + 500) // 1000
    if kind == K_OC:
        return oc_ma(code, shunt_uohm)
    if kind == K_OC_DLY:
        return (oc_delay_us(code) + 500) // 1000
    if kind == K_SCD:
        return scd_ma(code, shunt_uohm) if code < len(SCD_MV) else None
    if kind == K_SCD_DLY:
        return scd_delay_us(code)
    if kind == K_TEMP:
        return temp_dc(code)
    if kind == K_SLEEP:
        return (code >> 8) & 1
    return code

