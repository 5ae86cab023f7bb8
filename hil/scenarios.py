"""Named scenarios: a plant with a load/charger profile plus timed events.

Events are `(t_ms, kind, args)` tuples, sorted by time. Kinds:
  chip faults (hil/faults.py): afe_nack(n) afe_timeout(n) afe_crc(n) ina_nack(n) ntc(ch, mode) with mode
                          0 ok / 1 open / 2 short / 3 stuck, open_wire(cell, on), current_offset(ma),
                          pack_drop(mv), current_stuck(on), current_gain(ppm), afe_brownout() the
                          BQ76952's supply dips (a POR: RAM settings, comm mode and FETs back to the
                          part's defaults); afe_nack(0) / afe_timeout(0) end a burst early
  A charger in the profile that is active (and has not given up) counts as a charger at LD even with
  the path open: it wakes a BQ76952 in SHUTDOWN, and with it the board (hal_sim._dark).
  runner actions:         power_loss() serial_garbage(nbytes) unplug() replug()
  plant actions (here):   degrade_cell(idx, cap_factor, r_factor) ambient(c)
  plant faults (hil/plant.py; they start at the start of the step the event falls in, which the plant
  logs as the onset):
                          short_circuit(ohm, ms) a hard short across the pack: I = OCV / (ohm + R0 of
                          the cells), hundreds to thousands of A; short_circuit(amps, ms, "a") a fixed
                          current; surge(amps, ms) extra discharge (an inverter's motor start);
                          ripple(amps_pk, hz, offset_ppm) a sinusoidal ripple on the load (single-phase
                          inverter: 100 Hz; offset_ppm the clock mismatch; amps_pk 0 ends it): the reply
                          carries the current at the sample instant and the step's exact mean
  The AFE's FETs cut the plant's current (the step request carries them): Plant.interruptions logs
  each interruption (fault onset us, interruption us, A, how) in plant time.
`Scenario.apply_plant_event(plant, kind, args)` applies plant actions and returns True if handled.
Cell indices in events are 0-based like the plant's arrays.
"""
from bisect import bisect_left

from hil import faults
from hil import profiles as P
from hil.plant import CHEMISTRY, Plant

H = 3600.0
MIN = 60.0
CHIP_EVENTS = tuple(faults.CODES)  # hil/faults.py: the codes the virtual board sends to hal_sim
RUNNER_EVENTS = ("power_loss", "serial_garbage", "unplug", "replug")
PLANT_EVENTS = ("degrade_cell", "ambient", "short_circuit", "surge", "ripple")


class Scenario:
    def __init__(self, name, duration_s, parts, chemistry="lfp", events=(), plant_kw=None, about=""):
        self.name, self.chemistry, self.about = name, chemistry, about
        self.duration_ms = int(duration_s * 1000)
        self._parts = parts          # seed -> list of profile parts (fresh state per plant)
        self._plant_kw = plant_kw or {}
        for _, kind, args in events:
            if kind not in CHIP_EVENTS + RUNNER_EVENTS + PLANT_EVENTS or not isinstance(args, tuple):
                raise ValueError("bad event %r %r in %s" % (kind, args, name))
        self.events = sorted(((int(t), k, a) for t, k, a in events), key=lambda e: e[0])
        self._times = [e[0] for e in self.events]

    def make_plant(self, seed=0, bal_r_ohm=None, bal_rsw_ohm=None):
        """bal_r_ohm, bal_rsw_ohm: the board's balancing path and the AFE switch's part of it (its
        limits' keys; None: the firmware's defaults)."""
        kw = dict(self._plant_kw)
        if bal_r_ohm is not None:
            kw["bal_r_ohm"] = bal_r_ohm
        if bal_rsw_ohm is not None:
            kw["bal_rsw_ohm"] = bal_rsw_ohm
        return Plant(self.chemistry, CHEMISTRY[self.chemistry], seed=seed,
                     profile=P.Mix(*self._parts(seed)), **kw)

    def events_between(self, t0_ms, t1_ms):
        """Events with t0_ms <= t < t1_ms."""
        return self.events[bisect_left(self._times, t0_ms):bisect_left(self._times, t1_ms)]

    @staticmethod
    def apply_plant_event(plant, kind, args):
        if kind == "degrade_cell":
            plant.degrade_cell(*args)
        elif kind == "ambient":
            plant.set_ambient(*args)
        elif kind in ("short_circuit", "surge", "ripple"):
            getattr(plant, kind)(*args)
        else:
            return False
        return True


def _cv(chem, per_cell=None):
    return P.cell_cv(chem, CHEMISTRY[chem], per_cell)


def _demo(seed):
    return [P.InverterLoad(1800.0, 0, 1.5 * H, idle_w=15.0), P.kettle(10 * MIN, 4), P.kettle(55 * MIN, 3),
            P.Fridge(seed), P.Solar(1500.0, _cv("lfp"), 1.5 * H, 6 * H, seed),
            P.mains(50.0, _cv("lfp"), 3.0, 1.75 * H)]


def _day(chem):
    def parts(seed):
        return [P.InverterLoad(15.0), P.Fridge(seed), P.kettle(7 * H, 3), P.kettle(7.5 * H, 3),
                P.kettle(13 * H, 4), P.Laptop(seed, 19 * H, 23 * H),
                P.Solar(1200.0, _cv(chem), 6.5 * H, 19.5 * H, seed),
                P.mains(30.0, _cv(chem), 3.0, 21 * H)]
    return parts


def _load(power_w, t1_s=None):
    return lambda seed: [P.InverterLoad(power_w, 0, t1_s or P.INF, idle_w=15.0), P.Fridge(seed)]


def _ov_soc0():
    s = [0.85] * 16
    s[5] = 0.95  # one cell well ahead of the others: it reaches full while the pack is still in CC
    return s


def _cov_soc0():
    s = [0.97] * 16
    s[5] = 0.995  # one cell ahead: it reaches the over-voltage limits while the others still take charge
    return s


def _sensor_errors(duration_s, offset_ma, gain_ppm, every_s=5):
    """A current sensor's offset and gain error, from 0 s and again every `every_s`: they belong to the
    board's parts, but the virtual board's chips start afresh with each board process (a power cut)."""
    return [(t * 1000, kind, (v,)) for t in range(0, int(duration_s), every_s)
            for kind, v in (("current_offset", offset_ma), ("current_gain", gain_ppm))]


SCENARIOS = {s.name: s for s in [
    Scenario("demo", 3 * H, _demo, about="discharge under inverter loads, then solar + mains charge",
             plant_kw={"soc0": 0.75}),
    Scenario("day", 24 * H, _day("lfp"), about="24 h power-station day", plant_kw={"soc0": 0.55}),
    Scenario("charge_ov", 1.5 * H, lambda seed: [P.mains(50.0, _cv("lfp", 3.55), 2.0)],
             about="CC-CV charge with one cell high: it passes 3.65 V; relay opens, charger stops",
             plant_kw={"soc0": _ov_soc0(), "h0": 1.0}),
    Scenario("hot_load", 1 * H, lambda seed: [P.InverterLoad(5000.0, 0, 45 * MIN)],
             events=[(0, "ambient", (56.0,)), (10 * MIN * 1000, "ambient", (59.0,))],
             about="heavy discharge at high ambient: cells pass 60 C",
             plant_kw={"soc0": 0.98, "ambient_c": 56.0}),
    Scenario("open_wire", 1 * H, _load(1000.0),
             events=[(20 * MIN * 1000, "open_wire", (7, 1)), (40 * MIN * 1000, "open_wire", (7, 0))],
             about="sense wire of cell 7 open from 20 to 40 min", plant_kw={"soc0": 0.7}),
    Scenario("i2c_faults", 1 * H, _load(800.0),
             events=[(5 * MIN * 1000, "afe_nack", (3,)), (10 * MIN * 1000, "afe_timeout", (2,)),
                     (15 * MIN * 1000, "afe_crc", (4,)), (20 * MIN * 1000, "ina_nack", (5,)),
                     (25 * MIN * 1000, "afe_nack", (60,)), (35 * MIN * 1000, "afe_timeout", (20,)),
                     (40 * MIN * 1000, "afe_crc", (50,)), (45 * MIN * 1000, "current_offset", (250,))],
             about="bursts of NACKs, timeouts and CRC errors", plant_kw={"soc0": 0.7}),
    Scenario("ntc_faults", 1 * H, _load(800.0),
             events=[(5 * MIN * 1000, "ntc", (0, 1)), (10 * MIN * 1000, "ntc", (0, 0)),
                     (15 * MIN * 1000, "ntc", (1, 2)), (20 * MIN * 1000, "ntc", (2, 3)),
                     (30 * MIN * 1000, "ntc", (1, 0)), (30 * MIN * 1000, "ntc", (2, 0))],
             about="NTC open, short and stuck, then restored", plant_kw={"soc0": 0.7}),
    Scenario("power_loss", 1 * H, _demo,
             events=[(1_234, "power_loss", ()), (61_050, "power_loss", ()), (61_900, "power_loss", ()),
                     (10 * MIN * 1000 + 7, "serial_garbage", (64,)), (15 * MIN * 1000, "unplug", ()),
                     (16 * MIN * 1000, "replug", ()), (30 * MIN * 1000 + 999, "power_loss", ()),
                     (45 * MIN * 1000 + 500, "power_loss", ())],
             about="power losses right after boot, twice within a second, mid-run", plant_kw={"soc0": 0.7}),
    Scenario("weak_cell", 2 * H, lambda seed: [P.InverterLoad(1500.0, idle_w=15.0)],
             events=[(5 * MIN * 1000, "degrade_cell", (10, 0.6, 3.0))],
             about="cell 11 (index 10) loses 40 % of its capacity and triples its resistance at 5 min, "
                   "then the pack is discharged until that cell is empty",
             plant_kw={"soc0": 0.5}),
    Scenario("nmc_day", 24 * H, _day("nmc"), chemistry="nmc", about="24 h day on the 14S NMC pack",
             plant_kw={"soc0": 0.55}),
    Scenario("short_circuit", 60, lambda seed: [P.InverterLoad(500.0, idle_w=15.0)],
             events=[(10_000, "short_circuit", (0.003, 50))],
             about="a 3 mOhm short across the pack at 10 s for 50 ms (~3.7 kA): the AFE's SCD cuts it",
             plant_kw={"soc0": 0.6}),
    Scenario("surge", 60, lambda seed: [P.InverterLoad(500.0, idle_w=15.0)],
             events=[(10_000, "surge", (300.0, 60))],
             about="a 300 A load surge for 60 ms at 10 s (a motor start): the AFE's OCD2 cuts it",
             plant_kw={"soc0": 0.6}),
    Scenario("surge_long", 60, lambda seed: [P.InverterLoad(500.0, idle_w=15.0)],
             events=[(10_000, "surge", (200.0, 1500))],
             about="a 200 A overload for 1.5 s at 10 s: the AFE's OCD1 cuts it",
             plant_kw={"soc0": 0.6}),
    Scenario("cov_charge", 0.5 * H, lambda seed: [P.pushing_charger(50.0, _cv("lfp", 3.9))],
             about="a charger that keeps pushing 50 A at end of charge (CV 3.9 V/cell, never stops): "
                   "one cell near full passes the firmware's cell_ov, then the AFE's COV",
             plant_kw={"soc0": _cov_soc0(), "h0": 1.0}),
    Scenario("ripple", 0.5 * H, lambda seed: [P.InverterLoad(1500.0, idle_w=15.0)],
             events=[(0, "ripple", (30.0, 100.0, 100.0))],
             about="1.5 kW inverter load with a 30 A 100 Hz ripple, 100 ppm off the BMS clock",
             plant_kw={"soc0": 0.7}),
    Scenario("inverter_ripple", 5 * MIN, lambda seed: [P.InverterLoad(1000.0)],
             events=[(0, "ripple", (20.0, 100.0, 100.0))],
             about="1 kW single-phase inverter: ~21 A mean with its 100 Hz power pulsation (20 A peak), "
                   "100 ppm off the BMS clock: the samples alias, the accumulators count it",
             plant_kw={"soc0": 0.6}),
    Scenario("pack_drop", 3 * MIN, lambda seed: [P.InverterLoad(1000.0)],
             events=[(60_000, "pack_drop", (2000,)), (120_000, "pack_drop", (0,))],
             about="PACK and LD read 2 V below the stack from 1 to 2 min (a FET that does not conduct): "
                   "the v_pack plausibility fault", plant_kw={"soc0": 0.6}),
    Scenario("current_stuck", 3 * MIN, lambda seed: [P.InverterLoad(1000.0), P.kettle(45, 1)],
             events=[(30_000, "current_stuck", (1,)), (120_000, "current_stuck", (0,))],
             about="the AFE's CC2 current frozen from 30 s to 2 min while a 2 kW kettle starts at 45 s: "
                   "the i_stuck plausibility fault", plant_kw={"soc0": 0.6}),
    Scenario("current_cal", 8 * MIN, lambda seed: [P.Constant(-40.0, 60, 240), P.Constant(25.0, 240, 420)],
             events=_sensor_errors(8 * MIN, 40, 10000),
             about="a current sensor 40 mA and 1 % off: rest for 1 min (cal zero), a 40 A discharge to "
                   "4 min (cal current), a 25 A charge to 7 min", plant_kw={"soc0": 0.6}),
    Scenario("deep_discharge", 1 * H, lambda seed: [P.Constant(-60.0)],
             about="a DC load without cut-off runs the pack to under-voltage; only the relay stops it",
             plant_kw={"soc0": 0.15}),
]}


def get(name):
    try:
        return SCENARIOS[name]
    except KeyError:
        raise KeyError("unknown scenario %r (have: %s)" % (name, ", ".join(SCENARIOS))) from None
