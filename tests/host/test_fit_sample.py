"""The sample characterisation log that ships with packwatch: small, the plant's own output, and `fit`
turns it into a model that matches the plant (the truth), not just any model."""
import numpy as np

from hil.characterise import run, write
from hil.plant import load_table
from hil.pybamm_cells import LIMITS
from packwatch import cli
from packwatch.fit import SAMPLE_LOG, fit_model
from packwatch.logcsv import read_log


def test_sample_ships_small_and_is_what_the_plant_gives(tmp_path):
    assert SAMPLE_LOG.is_file() and SAMPLE_LOG.stat().st_size < 300_000
    log = read_log(str(SAMPLE_LOG))
    assert log.n_cells == 1 and log.meta["chem"] == "lfp"
    rows, _ = run("lfp", 100.0)
    again = tmp_path / "again.csv"
    write(again, rows, "lfp", 100.0)
    assert again.read_bytes() == SAMPLE_LOG.read_bytes(), "stale sample: python -m hil.characterise -o " + str(SAMPLE_LOG)


def test_fit_of_the_sample_matches_the_plant():
    rows, _ = run("lfp", 100.0)
    soc = np.array(rows)[:, 3]            # the plant's SoC: truth
    full, empty = soc.max(), soc.min()    # end of the CV hold, C/20 cut-off
    m = fit_model(SAMPLE_LOG)
    vcv, vcut = LIMITS["lfp"]             # the protocol's CV voltage and cut-off
    lim = m["limits"]
    assert abs(lim["v_max"] - vcv) <= 0.002 and vcv - 0.02 <= lim["v_full"] <= vcv
    assert abs(lim["v_min"] - vcut) <= 0.01 and vcut <= lim["v_cutoff"] <= vcut + 0.05, lim
    assert m["chemistry"] == "lfp" and lim["v_cutoff"] < lim["v_full"]
    assert abs(m["capacity_ah"] - 100.0 * (full - empty)) <= 0.5, (m["capacity_ah"], full - empty)
    # OCV branches against the plant's tables, on the SoC scale the fit uses (0 % = cut-off, 100 % = full)
    tab = load_table("lfp")
    pct = np.array(m["soc_pct"], float)
    ps = empty + pct / 100 * (full - empty)
    mid = (pct >= 20) & (pct <= 90)  # 10 % steps: the knees are only as fine as the steps
    for key, sign in (("ocv_discharge_v", -1), ("ocv_charge_v", 1)):
        truth = np.interp(ps, tab["grid"], tab["mid"] + sign * tab["half"])
        err = np.abs(np.array(m[key]) - truth)
        assert err[mid].max() < 0.010 and err.max() < 0.05, (key, np.round(err * 1000, 1))
    # R0 of the plant's cell (the table's cell scaled to 100 Ah): within 10 %
    r0 = tab["r0_ohm"] * tab["ref_capacity_ah"] / 100.0
    assert abs(np.median(m["r0_ohm"]) / r0 - 1) < 0.1


def test_fit_sample_cli(tmp_path, capsys):
    assert cli.main(["fit", "--sample"]) == 0
    assert capsys.readouterr().out.strip() == str(SAMPLE_LOG)
    out = tmp_path / "m.json"
    assert cli.main(["fit", "--sample", "-o", str(out)]) == 0 and out.stat().st_size > 500
    assert cli.main(["fit"]) == 2 and "--sample" in capsys.readouterr().err
