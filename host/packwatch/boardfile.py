"""Board files (boards/*.json): one schema, boards/board.schema.json, checked with `jsonschema`.

``load_board(path)`` returns the parsed board or raises ``BoardFileError`` (a ValueError) whose one
line names the file, the key (as a JSON path), the value and what is allowed:

    boards/x.json: chemistry: 'lpf' is not one of 'lfp', 'nmc'

The schema's limits, chemistry, cell count and per-chemistry voltage ranges are generated from
firmware/pwfw/config.py (KEYS, CHEMISTRIES, CELLS_MIN/MAX, CHEM_RANGES), the one source the firmware
checks against too: ``python -m packwatch.boardfile --write-schema`` rewrites them, and a T0 test fails
while the committed schema differs from what this module generates. After the schema, the checks
that need more than one key run through the firmware's own code (pwfw.config: the order of paired
limits; pwfw.bq76952.cell_inputs: a cell map for the cell count).
"""
import copy
import difflib
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# a checkout's boards/ (the source), or the copy installed with the package (packwatch/boards)
SCHEMA_PATHS = (HERE.parents[1] / "boards" / "board.schema.json", HERE / "boards" / "board.schema.json")

_RANK = {"required": 0, "additionalProperties": 1, "type": 2, "enum": 3, "const": 3}
_TYPES = {"integer": "an integer", "string": "a string", "object": "an object", "array": "an array",
          "boolean": "true or false", "null": "null", "number": "a number"}


class BoardFileError(ValueError):
    """A board file that cannot be used: the message is the one line to show."""


def schema_path():
    for p in SCHEMA_PATHS:
        if p.exists():
            return p
    raise BoardFileError("board.schema.json is missing (looked in %s)" % ", ".join(str(p.parent) for p in SCHEMA_PATHS))


_VALIDATOR = None


def validator():
    """A Draft 2020-12 validator of the schema where an integer is an int, never 4.0 or true (the
    firmware compares types exactly, and machine.Pin(4.0) fails on a board)."""
    global _VALIDATOR
    if _VALIDATOR is None:
        from jsonschema import Draft202012Validator, validators

        checker = Draft202012Validator.TYPE_CHECKER.redefine(
            "integer", lambda _c, v: isinstance(v, int) and not isinstance(v, bool))
        cls = validators.extend(Draft202012Validator, type_checker=checker)
        schema = json.loads(schema_path().read_text())
        cls.check_schema(schema)
        _VALIDATOR = cls(schema)
    return _VALIDATOR


def _show(v):
    return repr(v) if isinstance(v, str) else json.dumps(v)


def _where(path):
    s = ""
    for p in path:
        s += "[%d]" % p if isinstance(p, int) else ("." if s else "") + str(p)
    return s


def _describe(e):
    """(JSON path, what is wrong) for one jsonschema error, in the firmware's wording."""
    path = list(e.absolute_path)
    sch = e.schema if isinstance(e.schema, dict) else {}
    hint = sch.get("x-hint")
    unit = sch.get("x-unit")
    v = e.instance
    kind = e.validator
    if kind == "required":
        missing = [k for k in e.validator_value if k not in v]
        return _where(path + missing[:1]), "missing (required)"
    if kind == "additionalProperties":
        known = list(sch.get("properties", {}))
        extra = [k for k in v if k not in known]
        k = extra[0]
        close = difflib.get_close_matches(k, known, 1)
        return _where(path + [k]), "unknown key" + (" (did you mean %r?)" % close[0] if close else
                                                     " (allowed: %s)" % ", ".join(known))
    if kind in ("minimum", "maximum"):
        lo, hi = sch.get("minimum"), sch.get("maximum")
        what = ("is out of range %s..%s" % (lo, hi) if lo is not None and hi is not None else
                "is below %s" % lo if kind == "minimum" else "is above %s" % hi)
        what += " " + unit if unit else ""
    elif kind == "type":
        t = e.validator_value
        what = "is not " + " or ".join(_TYPES.get(x, x) for x in (t if isinstance(t, list) else [t]))
    elif kind == "enum":
        what = "is not one of " + ", ".join(_show(x) for x in e.validator_value)
    elif kind == "const":
        what = "is not " + _show(e.validator_value)
    elif kind == "minItems":
        what = "has %d items, fewer than %d" % (len(v), e.validator_value)
    elif kind == "maxItems":
        what = "has %d items, more than %d" % (len(v), e.validator_value)
    elif kind == "uniqueItems":
        what = "lists an item twice"
    elif kind == "minLength":
        what = "is shorter than %d characters" % e.validator_value
    elif kind == "maxLength":
        what = "is longer than %d characters" % e.validator_value
    else:
        what = e.message
    if hint:
        what += " " + hint if hint.startswith("for ") else " (%s)" % hint
    return _where(path), "%s %s" % (_show(v), what)


def check_board(board, src="board file"):
    """Raise BoardFileError naming the first problem of a parsed board file; return None if it is good."""
    errors = list(validator().iter_errors(board))
    if errors:
        # the most basic problem first (a missing or unknown key, a wrong type), and a key's own
        # range before the narrower range of its chemistry (as the firmware reports them)
        e = min(errors, key=lambda e: (_RANK.get(e.validator, 4), len(e.absolute_schema_path),
                                       [str(p) for p in e.absolute_path]))
        where, what = _describe(e)
        raise BoardFileError("%s: %s: %s" % (src, where or "(top level)", what))
    # what needs several keys: the firmware's own checks
    from pwfw import config as fwconfig
    from pwfw.boot import check_board as fw_check_board
    from pwfw.boot import check_current as fw_check_current
    from pwfw.bq76952 import cell_inputs

    try:
        fw_check_board(board, src)
        fw_check_current(board, fwconfig.Config(board), src)
    except ValueError as e:
        msg = str(e)
        if msg.startswith("board file: "):
            msg = "%s: limits: %s" % (src, msg[len("board file: "):])
        raise BoardFileError(msg) from None
    if "cell_map" in board:
        try:
            cell_inputs(board["cells"], board["cell_map"])
        except ValueError:
            raise BoardFileError("%s: cell_map: %s must list %d increasing BQ76952 inputs (1..16), one per cell"
                                 % (src, json.dumps(board["cell_map"]), board["cells"])) from None


def load_board(path):
    """The board file at path, parsed and checked (see check_board)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BoardFileError("%s: no such board file" % path) from None
    except (OSError, UnicodeDecodeError) as e:
        raise BoardFileError("%s: cannot read it: %s" % (path, getattr(e, "strerror", None) or e)) from None
    try:
        board = json.loads(text)
    except json.JSONDecodeError as e:
        raise BoardFileError("%s: not valid JSON: %s at line %d column %d" % (path, e.msg, e.lineno, e.colno)) from None
    check_board(board, str(path))
    return board


# --- the generated part of the schema ----------------------------------------------------------
def _limit_schema(row):
    name, lfp, nmc, lo, hi, unit = row
    return {"type": "integer", "minimum": lo, "maximum": hi, "x-unit": unit,
            "description": "default %d (lfp), %d (nmc); docs/configuration.md" % (lfp, nmc)}


def generated_parts():
    """{JSON pointer: value} of everything in the schema that comes from firmware/pwfw/config.py."""
    from pwfw import afe_config as afe
    from pwfw import config as c

    rows = {r[0]: r for r in c.KEYS}
    chem_ranges = {"allOf": []}
    for chem in c.CHEMISTRIES:
        props = {}
        for key, lo, hi in c.CHEM_RANGES[chem]:
            props[key] = {"minimum": lo, "maximum": hi, "x-unit": rows[key][5], "x-hint": "for " + chem}
        chem_ranges["allOf"].append({
            "if": {"properties": {"chemistry": {"const": chem}}, "required": ["chemistry"]},
            "then": {"properties": {"limits": {"properties": props}}},
        })
    parts = {
        "/properties/chemistry": {"x-generated": True, "enum": list(c.CHEMISTRIES)},
        "/properties/cells": {"x-generated": True, "type": "integer", "minimum": c.CELLS_MIN,
                              "maximum": c.CELLS_MAX, "description": "series cells (BQ76952: 3 to 16)"},
        "/properties/limits": {
            "x-generated": True, "type": "object", "additionalProperties": False,
            "description": "overrides of the chemistry's defaults, applied together (docs/configuration.md)",
            "properties": {r[0]: _limit_schema(r) for r in c.KEYS},
        },
        "/$defs/chemistry_ranges": dict(chem_ranges, **{"x-generated": True}),
    }
    for key in c._BOARD_FIELDS:
        parts["/properties/" + key] = dict(_limit_schema(rows[key]), **{"x-generated": True})
    # the AFE's protections, power path and security keys (firmware/pwfw/afe_config.py AFE_KEYS, FET_*)
    parts["/properties/afe/properties/protect"] = {
        "x-generated": True, "type": "object", "additionalProperties": False,
        "description": "overrides of the AFE protection defaults per chemistry (docs/hardware.md)",
        "properties": {r[0]: _limit_schema(r) for r in afe.AFE_KEYS},
    }
    parts["/properties/afe/properties/fets"] = {
        "x-generated": True, "type": "object", "additionalProperties": False,
        "description": "the power path the AFE's FET drivers switch (defaults %s)" % (afe.FET_DEFAULTS,),
        "properties": {
            "topology": {"enum": list(afe.FET_TOPOLOGIES)},
            "pchg": {"type": "boolean", "description": "a pre-charge FET is fitted"},
            "pdsg": {"type": "boolean", "description": "a pre-discharge FET is fitted (FET Options PDSG_EN)"},
            "contactor_pin": {"$ref": "#/$defs/pin_or_null", "description": "a secondary contactor on a GPIO"},
        },
    }
    parts["/properties/afe/properties/keys"] = {
        "x-generated": True, "type": "array", "minItems": 4, "maxItems": 4,
        "items": {"type": "integer", "minimum": 1, "maximum": 65535},
        "description": "security keys: unseal step 1, 2, full access step 1, 2 (not the factory 0x0414 0x3672 0xFFFF 0xFFFF)",
    }
    # the unlock key and the power path's current ratings (pwfw/limits.py: hard limits)
    from pwfw import limits as lim

    parts["/properties/unlock_key"] = {
        "x-generated": True, "type": "string", "minLength": lim.UNLOCK_KEY_MIN, "maxLength": lim.UNLOCK_KEY_MAX,
        "pattern": "^[!-~]+$",
        "description": "the key `unlock` takes before a protection setting changes: printable ASCII, no "
                       "spaces (default %r, documented: set your own; docs/configuration.md)" % lim.DEFAULT_UNLOCK_KEY,
    }
    rating = {"type": "integer", "minimum": 100, "maximum": 2000000, "x-unit": "mA"}
    parts["/properties/ratings"] = {
        "x-generated": True, "type": "object", "additionalProperties": False,
        "description": "what the power path (FETs, wiring, fuse) is rated for: oc_chg_ma / oc_dsg_ma can never "
                       "be set above these (docs/configuration.md, hard limits)",
        "properties": {"chg_ma": dict(rating, description="continuous charge current rating"),
                       "dsg_ma": dict(rating, description="continuous discharge current rating")},
    }
    # what the firmware does when it cannot protect (afe_config FAILSAFE_KEYS / FAILSAFE_DEFAULTS)
    parts["/properties/failsafe"] = {
        "x-generated": True, "type": "object", "additionalProperties": False,
        "description": "fail safe and deep-discharge shutdown (docs/hardware.md, Supervision)",
        "properties": dict({r[0]: _limit_schema(r) for r in afe.FAILSAFE_KEYS}, keep_dsg={
            "type": "boolean", "description": "with every temperature lost or the current saturated, keep "
            "the DSG FET and the relay on (default %s: nothing conducts)" % (afe.FAILSAFE_DEFAULTS["keep_dsg"],)}),
    }
    parts["/properties/afe/properties/fet_ts"] = {
        "x-generated": True, "type": ["integer", "null"], "minimum": 1, "maximum": 3,
        "description": "the TS pin with the FET thermistor (OTF), or null",
    }
    return parts


def _at(doc, pointer):
    *parents, last = pointer.strip("/").split("/")
    for p in parents:
        doc = doc[p]
    return doc, last


def generated_schema(schema):
    """The schema with its generated parts rebuilt from firmware/pwfw/config.py."""
    out = copy.deepcopy(schema)
    for pointer, value in generated_parts().items():
        parent, key = _at(out, pointer)
        parent[key] = value
    return out


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv != ["--write-schema"]:
        print("usage: python -m packwatch.boardfile --write-schema   (rebuild boards/board.schema.json's "
              "generated parts from firmware/pwfw/config.py)", file=sys.stderr)
        return 2
    p = SCHEMA_PATHS[0]
    new = generated_schema(json.loads(p.read_text()))
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(new, indent=1, ensure_ascii=False) + "\n")
    tmp.replace(p)
    print("wrote %s" % p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
