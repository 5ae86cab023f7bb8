"""T0: every integer pwfw.soc computes per update fits a small int on a 32-bit port.

On rp2 and esp32 a MicroPython small int holds -2**30 .. 2**30-1 (31 bits, one bit tags the object;
py/mpconfig.h, MICROPY_OBJ_REPR_A); any result beyond is a heap-allocated big int, so one product too
large allocates on every call there and never on the 64-bit unix port. In viper code an int is the
machine word (32 bits there), where an overflow wraps silently and changes the result. So the test
rewrites soc.py's syntax tree to check every arithmetic result (binary and unary operators, augmented
assignments) against those ranges, and drives the estimator with the plant through scenarios that
reach every branch: discharge to cut-off, charge to the CV tail, rests, a wrong start.
"""
import ast
import json
import types
from array import array
from pathlib import Path

import pytest

from hil.scenarios import get
from pwfw import soc as soc_mod

SRC = Path(soc_mod.__file__)
SMALL = 1 << 30  # 31-bit small ints (32-bit ports)
WORD = 1 << 31  # viper: a 32-bit machine word, signed


class _Check(ast.NodeTransformer):
    def __init__(self):
        self.limit = SMALL

    def visit_FunctionDef(self, node):
        viper = any(isinstance(d, ast.Attribute) and d.attr == "viper" for d in node.decorator_list)
        was = self.limit
        self.limit = WORD if viper else SMALL
        self.generic_visit(node)
        self.limit = was
        return node

    def _wrap(self, node, expr):
        call = ast.Call(ast.Name("_chk", ast.Load()), [expr, ast.Constant(node.lineno), ast.Constant(self.limit)], [])
        return ast.copy_location(call, node)

    def visit_BinOp(self, node):
        self.generic_visit(node)
        return self._wrap(node, node)

    def visit_UnaryOp(self, node):
        self.generic_visit(node)
        return self._wrap(node, node) if isinstance(node.op, ast.USub) else node

    def visit_AugAssign(self, node):
        self.generic_visit(node)
        load = ast.parse(ast.unparse(node.target), mode="eval").body  # the target, read (no side effects here)
        value = self._wrap(node, ast.BinOp(load, node.op, node.value))
        return ast.copy_location(ast.Assign([node.target], value), node)


def checked_module(seen):
    tree = _Check().visit(ast.parse(SRC.read_text()))
    ast.fix_missing_locations(tree)
    mod = types.ModuleType("pwfw.soc_checked")
    mod.__file__ = str(SRC)
    active = [False]  # only inside update(): construction, state() and restore() run once, not per sample

    def _chk(x, line, limit):
        if active[0] and type(x) is int and not -limit <= x < limit:
            seen.setdefault(line, x)
        elif active[0] and type(x) is float:
            seen.setdefault(line, x)
        return x

    mod._chk = _chk
    exec(compile(tree, str(SRC), "exec"), mod.__dict__)
    return mod, active


def drive(mod, active, scenario, hours, chem="lfp", start_pm=None, seed=3):
    from pwfw.soc import load_model

    model = json.loads((SRC.parent / "models" / (chem + ".json")).read_text())
    sc = get(scenario)
    plant = sc.make_plant(seed)
    n = len(plant.cells_mv10)
    est = mod.Estimator(load_model(model), n, 100000)
    if start_pm is not None:
        est.set_soc(start_pm)
    cells = array("h", [0] * n)
    relay = True
    for k in range(int(hours * 36000)):
        plant.step(100, relay)
        for c, v in enumerate(plant.cells_mv10):
            cells[c] = int(v) // 10
        relay = min(cells) > 2600 and max(cells) < (3650 if chem == "lfp" else 4200)  # the protections' cut
        active[0] = True
        est.update(100, int(plant.i_ma), cells, 250)
        active[0] = False
    return est


@pytest.mark.parametrize("scenario,hours,chem,start", [
    ("demo", 3.0, "lfp", None),            # discharge under inverter load, solar + mains charge to full
    ("deep_discharge", 1.0, "lfp", 300),   # to the cut-off: the 0 % sync
    ("charge_ov", 0.2, "lfp", 900),        # CC to the high cell's limit, then rest
    ("nmc_day", 1.0, "nmc", 100),          # NMC (steep OCV: corrections every window), a wrong start
])
def test_every_result_is_a_small_int_on_32_bit_ports(scenario, hours, chem, start):
    seen = {}
    mod, active = checked_module(seen)
    drive(mod, active, scenario, hours, chem, start)
    lines = SRC.read_text().splitlines()
    assert not seen, "beyond a 32-bit port's small ints (big int allocated, or a viper word wrapped):\n" + "\n".join(
        "  soc.py:%d %s  -> %r" % (ln, lines[ln - 1].strip(), v) for ln, v in sorted(seen.items()))
