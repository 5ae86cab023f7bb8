# Chip faults a scenario injects on the virtual board, one table for all who name them: the scenario
# event (hil/scenarios.py), the code the virtual board's lockstep (packwatch.vboard) sends with a step
# reply as <BBh (code, a, b), and hal_sim, which applies it to the simulated chips. Events with one
# argument send it as b (a = 0); with two, (a, b). Portable: hal_sim imports it inside MicroPython.
AFE_NACK = 1  # afe_nack(n): the BQ76952 NACKs its next n transactions
AFE_TIMEOUT = 2  # afe_timeout(n): its next n transactions time out
AFE_CRC = 3  # afe_crc(n): n replies with a corrupted CRC byte
INA_NACK = 4  # ina_nack(n): the INA228 NACKs its next n transactions
NTC = 5  # ntc(ch, mode): MCU NTC channel ch 0 ok / 1 open / 2 short / 3 stuck
OPEN_WIRE = 6  # open_wire(cell, on): a sense wire (cell index from 0) opens (on=1) or closes again
CURRENT_OFFSET = 7  # current_offset(ma): an offset added to the measured current
AFE_BROWNOUT = 8  # afe_brownout(): the BQ76952's supply dips: a power-on reset (RAM settings lost, FETs off)
PACK_DROP = 9  # pack_drop(mv): the BQ76952's PACK and LD read this far below the stack (a FET that does not conduct)
CURRENT_STUCK = 10  # current_stuck(on): the BQ76952's CC2 current keeps its last reading (1) or measures again (0)
CURRENT_GAIN = 11  # current_gain(ppm): the sense resistor is ppm off the board file's shunt_uohm (the chips' gain)

# scenario event name -> code
CODES = {
    "afe_nack": AFE_NACK,
    "afe_timeout": AFE_TIMEOUT,
    "afe_crc": AFE_CRC,
    "ina_nack": INA_NACK,
    "ntc": NTC,
    "open_wire": OPEN_WIRE,
    "current_offset": CURRENT_OFFSET,
    "afe_brownout": AFE_BROWNOUT,
    "pack_drop": PACK_DROP,
    "current_stuck": CURRENT_STUCK,
    "current_gain": CURRENT_GAIN,
}
