"""`packwatch estimate`: run the firmware's SoC estimator (pwfw.soc) over a log CSV."""
import os
from array import array

import numpy as np

from packwatch.cli import POSITIVE, number
from packwatch.files import atomic_output
from packwatch.logcsv import read_log
from pwfw import soc_model
from pwfw.soc import Estimator, load_model

MODELS = os.path.join(os.path.dirname(os.path.abspath(soc_model.__file__)), "models")


def _model(model):
    if isinstance(model, str) and not os.path.exists(model) and model in ("lfp", "nmc"):
        model = os.path.join(MODELS, model + ".json")
    name = model if isinstance(model, str) else "model"
    try:
        return load_model(model)
    except KeyError as e:  # the firmware loader indexes the keys it needs: name the missing one
        raise ValueError("%s: not a cell model: missing key %s (the format: docs/cell-model.md)" % (name, e)) from None
    except (TypeError, ValueError, IndexError, AttributeError) as e:  # not JSON, or a value of the wrong type
        raise ValueError("%s: not a cell model (%s; the format: docs/cell-model.md)" % (name, e)) from None


def estimate(log, model, initial_soc=None, capacity_ah=None):
    """Run the estimator over ``log`` (path or packwatch.logcsv.Log) with ``model`` (path, dict,
    'lfp'/'nmc'). ``initial_soc`` (%) plays a persisted SoC; None = first boot (from voltage).
    ``capacity_ah``: nominal capacity of the cells in the log (default: the model's).
    Returns {'t_s', 'soc_pct', 'soc_sigma_pct', 'cellNN_soc_pct'...} as numpy arrays."""
    if isinstance(log, (str, os.PathLike)):
        log = read_log(str(log))
    m = _model(model)
    cap = int(round((capacity_ah if capacity_ah else m.cap_mah / 1000.0) * 1000))
    n = log.n_cells
    if n == 0:
        raise ValueError("log has no cellNN_v columns")
    est = Estimator(m, n, cap)
    if initial_soc is not None:
        est.set_soc(int(round(float(initial_soc) * 10)))
    t = np.asarray(log.t_s, float)
    if not len(t):
        raise ValueError("%s: no data rows" % getattr(log, "path", "log"))
    i_ma = np.nan_to_num(np.asarray(log.current_a, float) * 1000.0).round().astype(np.int64)
    cells = np.nan_to_num(np.asarray(log.cells_v, float) * 1000.0).round().clip(-32768, 32767).astype(np.int64)
    temps = log.temps_c[:, 0] if log.temps_c is not None else log.cols.get("temp_c")
    soc = np.empty(len(t))
    sig = np.empty(len(t))
    cell_soc = np.empty((len(t), n))
    buf = array("h", [0] * n)
    prev = t[0] if len(t) else 0.0
    for k in range(len(t)):
        for c in range(n):
            buf[c] = int(cells[k, c])
        dt = int(round((t[k] - prev) * 1000))
        prev = t[k]
        td = None
        if temps is not None and np.isfinite(temps[k]):
            td = int(round(temps[k] * 10))
        est.update(max(0, dt), int(i_ma[k]), buf, td)
        soc[k] = est.soc_pm
        sig[k] = est.sigma_pm
        cell_soc[k] = est.cell_soc_pm
    out = {"t_s": t, "soc_pct": soc / 10.0, "soc_sigma_pct": sig / 10.0}
    for c in range(n):
        out["cell%02d_soc_pct" % (c + 1)] = cell_soc[:, c] / 10.0
    return out


def write_csv(path, out):
    names = list(out)
    data = np.column_stack([out[k] for k in names])
    fmt = ["%.3f"] + ["%.1f"] * (len(names) - 1)
    np.savetxt(path, data, delimiter=",", header=",".join(names), comments="", fmt=fmt)


def run(args):
    with atomic_output(args.output, [args.log, args.model]) as tmp:
        out = estimate(args.log, args.model, args.initial_soc, args.capacity_ah)
        write_csv(tmp, out)
    last = len(out["t_s"]) - 1
    if last >= 0:
        print("%s: %d rows, final SoC %.1f %% +- %.1f %%" % (
            args.output, last + 1, out["soc_pct"][last], out["soc_sigma_pct"][last]))
    return 0


def register(sub):
    p = sub.add_parser("estimate", help="run the firmware SoC estimator over a log CSV",
                       description="Run pwfw.soc over LOG.csv and write t_s, soc_pct, soc_sigma_pct "
                       "and cellNN_soc_pct.")
    p.add_argument("log", help="log CSV (t_s, current_a, cellNN_v, ...)")
    p.add_argument("--model", required=True, help="cell model JSON (or 'lfp' / 'nmc' for the defaults)")
    p.add_argument("-o", "--output", required=True, help="output CSV")
    p.add_argument("--initial-soc", type=number(0, 100), default=None, metavar="PCT",
                   help="SoC %% (0-100) persisted on the board; omit for first-boot behaviour (from voltage)")
    p.add_argument("--capacity-ah", type=POSITIVE, default=None, metavar="AH",
                   help="nominal capacity of the pack's cells (scales the model cell; default: the model's)")
    p.set_defaults(func=run)
    return p

