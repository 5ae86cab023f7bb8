"""T1: a model written by `packwatch fit` (with its `fit` key: warnings, segment counts) loads under the
real MicroPython into the same integer tables as under CPython, and an Estimator runs on it."""
import json

from packwatch.fit import SAMPLE_LOG, fit_model
from pwfw.soc_model import load_model


def test_fitted_model_with_fit_key_loads_under_micropython(mp, tmp_path):
    m = fit_model(SAMPLE_LOG)
    m["fit"]["warnings"].append("a warning, as a model with one carries it")
    path = tmp_path / "fitted.json"
    path.write_text(json.dumps(m, indent=1))
    want = load_model(str(path))   # the firmware's loader under CPython: the tables to compare against
    out = mp.run("""
import json
from array import array
from pwfw.soc import Estimator, load_model
with open(%r) as f:
    d = json.load(f)
m = load_model(d)
print('TAB', m.cap_mah, m.v_full_uv, m.v_cut_uv, m.tau1_ms, m.tau2_ms, *(list(m.mid) + list(m.half) + list(m.r0)))
e = Estimator(m, 1, 100000)
for k in range(50):
    e.update(1000, -20000, array('h', [3250]), 250)
print('SOC', e.soc_pm, len(d['fit']['warnings']))
""" % str(path))
    tab = [ln for ln in out.splitlines() if ln.startswith("TAB")][0].split()[1:]
    assert [int(x) for x in tab] == [want.cap_mah, want.v_full_uv, want.v_cut_uv, want.tau1_ms, want.tau2_ms,
                                     *want.mid, *want.half, *want.r0]
    soc = [ln for ln in out.splitlines() if ln.startswith("SOC")][0].split()
    assert 0 <= int(soc[1]) <= 1000 and soc[2] == "1"
