"""T2 (issue 12): a pack run into a deep under-voltage can still be recharged. The firmware's cell_uv
(and the AFE's CUV) turn the AFE's DSG FET off and leave the charge path and the relay closed
(docs/hardware.md, "Deep under-voltage"), so a charger that is plugged in charges the pack, and no
discharge is allowed until the cells are back above cell_uv_mv + cell_uv_hyst_mv.

Expected values come from the plant's truth (hil/plant.py through the lockstep's truth rows: row[1] the
current over the step, row[3] the cells in 0.1 mV, row[10] the path: bit 0 relay, 1 CHG FET, 2 DSG FET)
and from the LFP defaults in docs/configuration.md (cell_uv_mv 2500, cell_uv_hyst_mv 300,
cell_uv_ms 2000), never from the firmware."""
from hil import profiles as P
from hil.scenarios import Scenario
from tests.t2.test_afe_supervision import evts

S = 1000
UV_MV, UV_HYST_MV, UV_MS = 2500, 300, 2000  # docs/configuration.md, LFP
LOAD_A, CHG_A = -30.0, 20.0
CHG_ON, CHG_OFF = 30, 60  # s: a charger is plugged in, then taken away again (the load still asks)


def test_deep_under_voltage_stops_discharge_and_a_charger_still_recharges(board):
    # every cell at 2 % SoC: ~2.25 V under a 30 A load, below cell_uv and the AFE's CUV, above the
    # shutdown threshold (failsafe.shutdown_mv 2000 mV), so the board stays up for the charger
    scen = Scenario("deep_uv_recharge", 90, lambda seed: [
        P.Constant(LOAD_A, 0, CHG_ON), P.pushing_charger(CHG_A, 3.45 * 16, CHG_ON, CHG_OFF),
        P.Constant(LOAD_A, CHG_OFF, 90)], plant_kw={"soc0": 0.02})
    c = board(scen, truth_every_ms=100)
    c.wait_t(85 * S)
    c.read()
    tr = [r for r in c.vb.truth if r[8] == 1]
    assert min(tr[1][3]) < UV_MV * 10  # the plant's cells are below the limit from the start
    assert [e["on"] for e in evts(c, "cell_uv")][:1] == [1]
    # discharge stops within the delay and a sample (and a report's slack for the first sample)
    stopped = [r for r in tr if UV_MS + 1200 <= r[0] < CHG_ON * S]
    assert stopped and all(r[1] == 0 and not r[10] & 4 for r in stopped), [r[:2] for r in stopped if r[1]][:3]
    # the charger charges: the relay and the CHG FET stay closed, the plant's current is the charger's
    # and every cell rises
    charging = [r for r in tr if (CHG_ON + 1) * S <= r[0] < CHG_OFF * S]
    assert charging and all(r[10] & 3 == 3 and r[1] >= CHG_A * 1000 - 500 for r in charging), \
        [(r[0], r[1], r[10]) for r in charging if not (r[10] & 3 == 3 and r[1] > 0)][:3]
    first, last = charging[0][3], charging[-1][3]
    assert all(b > a for a, b in zip(first, last)), (first, last)
    # charger gone, the load asks again: still no discharge while the cells are below the release level
    after = [r for r in tr if (CHG_OFF + 1) * S <= r[0]]
    assert after and all(min(r[3]) < (UV_MV + UV_HYST_MV) * 10 for r in after)  # not recovered yet
    assert all(r[1] >= 0 and not r[10] & 4 for r in after), [(r[0], r[1]) for r in after if r[1] < 0][:3]
    assert not evts(c, "shutdown")
