"""Temperature error vs the thermistor's published R-T table over -30..80 °C, for both ports' simulated
ADCs (hil/chips/adc.py: RP2040-E11 DNL spikes and noise; the ESP32's range, compression and a rail that
is not 3.300 V), through the shipped board files and the firmware's conversion (pwfw.ntc). Writes
bench/results/ntc.md. `python bench/hil/bench_ntc.py` (part of `make bench`)."""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "firmware"), str(ROOT)]

from hil.chips.adc import AdcHal, NtcAdcSim  # noqa: E402
from pwfw.ntc import Ntc, load_part  # noqa: E402

SEEDS = range(1, 9)
READS = 20  # temperature reads per point and seed


def board_ntc(name):
    return json.loads((ROOT / "boards" / (name + ".json")).read_text())["ntc"]


def errors(cfg, port, ntc, rail_mv, rail=True):
    """{°C: (mean error, worst error)} in °C over seeds and reads; None readings count as worst 99."""
    out = {}
    for t, r in load_part("b57330v2103"):
        if not -30 <= t <= 80:
            continue
        errs = []
        for seed in SEEDS:
            sim = NtcAdcSim(cfg, port=port, seed=seed, rail_mv=rail_mv)
            sim.set_temp(0, 10 * t)
            hal = AdcHal(sim, rail)
            for _ in range(READS):
                got = ntc.read_dc(hal, 0)
                errs.append(99.0 if got is None else (got - 10 * t) / 10)
        out[t] = (sum(errs) / len(errs), max(errs, key=abs))
    return out


def main():
    pico = board_ntc("pico")
    esp = board_ntc("esp32")
    old = {"r_fixed": 10000, "r25": 10000, "beta": 3435, "pins": [0], "ntc_on_top": False,
           "adc_bits": 12, "vref_mv": 3300}
    cols = [
        ("rp2: pico.json (table, E11 correction, 8 reads)", errors(pico, "rp2", Ntc.from_board(pico), 3300)),
        ("rp2: table, no E11 correction, 1 read", errors(pico, "rp2", Ntc.from_board(dict(pico, e11=False, n_avg=1)), 3300)),
        ("rp2: the old pico.json (B3435 equation, no E11 correction, 1 read)", errors(pico, "rp2", Ntc.from_board(old), 3300)),
        ("esp32: esp32.json (47k/1k divider, 16 reads), rail 3.25 V measured", errors(esp, "esp32", Ntc.from_board(esp), 3250)),
        ("esp32: the same, rail taken as 3.300 V", errors(esp, "esp32", Ntc.from_board(esp), 3250, rail=False)),
        ("esp32: the old esp32.json (10k/10k, B3435, rail taken as 3.300 V), rail 3.25 V",
         errors(dict(old, atten_db=11), "esp32", Ntc.from_board(dict(old, atten_db=11)), 3250, rail=False)),
    ]
    lines = ["# Temperature error vs the published R-T table", "",
             "`python bench/hil/bench_ntc.py`: the default part's table (TDK/EPCOS B57330V2103, 10 kΩ, "
             "B25/85 = 3435 K; `firmware/pwfw/models/ntc_b57330v2103.json`) through each board file's divider, "
             "the simulated port ADC (`hil/chips/adc.py`) and the firmware's conversion (`pwfw.ntc`); "
             "%d chips (seeds) x %d reads per point. Cells: mean / worst error in °C; `none` = the reading "
             "was rejected (outside the ADC's specified range; the firmware reports a sensor fault)." % (len(SEEDS), READS),
             "", "| °C | " + " | ".join(c[0] for c in cols) + " |", "|---:|" + "---:|" * len(cols)]

    def cell(m, w):
        return "none" if abs(w) >= 99 else "%+.2f / %+.2f" % (m, w)
    for t in sorted(cols[0][1]):
        lines.append("| %d | " % t + " | ".join(cell(*c[1][t]) for c in cols) + " |")
    lines.append("")
    worst = [max(abs(w) for m, w in c[1].values()) for c in cols]
    lines.append("Worst over -30..80 °C: " + "; ".join("%s: %s" % (c[0], "rejected somewhere" if w >= 99 else "%.2f °C" % w)
                                                       for c, w in zip(cols, worst)) + ".")
    out = ROOT / "bench" / "results" / "ntc.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print("wrote", out)


if __name__ == "__main__":
    main()
