"""T0: the alarm, fault and power-path bit names are one contract. docs/protocol.md's tables are the
spec; protocol_vectors.json's "bits" must list the same, and so must the firmware's tables (with the
`const` bits its hot paths use) and the host's. A name or bit added, dropped or moved on one side only fails."""
import json
import re

import pytest

from packwatch import protocol as host
from pwfw import app, pack, protect
from tests.support import ROOT, VECTORS

BITS = json.loads(VECTORS.read_text())["bits"]
SECTIONS = {"alarm": "Alarm bits", "fault": "Fault bits", "fet": "Power-path bits", "prot": "AFE protection bits"}


def doc_table(title):
    """(bit, name) rows of the table under `### <title>` in docs/protocol.md."""
    text = (ROOT / "docs" / "protocol.md").read_text()
    section = text.split("### " + title, 1)[1].split("\n#", 1)[0]
    rows = re.findall(r"^\| (\d+) \| `([a-z0-9_]+)` \|", section, re.M)
    assert rows, "no bit table under '### %s' in docs/protocol.md" % title
    return [(int(b), n) for b, n in rows]


@pytest.mark.parametrize("kind", sorted(SECTIONS))
def test_vectors_list_the_bits_of_protocol_md(kind):
    rows = doc_table(SECTIONS[kind])
    assert [b for b, _ in rows] == list(range(len(rows)))  # bits 0..n-1 in order, none skipped
    assert BITS[kind] == [n for _, n in rows]


def test_host_tables_are_the_spec():
    assert list(host.ALARM_BITS) == BITS["alarm"]
    assert list(host.FAULT_BITS) == BITS["fault"]
    assert list(host.FET_BITS) == BITS["fet"]
    assert len(host.FET_WORDS) == len(host.FET_BITS)
    assert list(host.PROT_BITS) == BITS["prot"]


def test_firmware_alarm_names_and_bits_are_the_spec():
    assert list(protect.ALARM_NAMES) == BITS["alarm"]
    # protect's bit numbers (CELL_OV = 0 ...) are the spec's positions
    assert [getattr(protect, n.upper()) for n in BITS["alarm"]] == list(range(len(BITS["alarm"])))
    assert app.ALARM_NAMES is protect.ALARM_NAMES  # the App names events from the one table


def test_firmware_fault_names_and_bits_are_the_spec():
    assert list(pack.FAULT_NAMES) == BITS["fault"]
    assert app.FAULT_NAMES is pack.FAULT_NAMES
    for k, n in enumerate(BITS["fault"]):
        # each fault has its const mask in pwfw.pack: _F_<NAME> (private) or F_<NAME> (set from App/commands)
        masks = [getattr(pack, p + n.upper()) for p in ("_F_", "F_") if hasattr(pack, p + n.upper())]
        assert masks == [1 << k], n


def test_firmware_fet_bits_are_the_spec():
    assert [getattr(app, "_FET_" + n.upper()) for n in BITS["fet"]] == [1 << k for k in range(len(BITS["fet"]))]


def test_firmware_prot_names_are_the_spec():
    assert list(pack.PROT_NAMES) == BITS["prot"]
    assert app.PROT_NAMES is pack.PROT_NAMES


def test_constants_copied_into_the_hot_path_match_their_owners():
    # App.path() uses its own const copies (a module global or an imported name costs a lookup per
    # sample on a board): each must equal the owner's
    from pwfw import protect

    assert app._RELAY_MASK == protect._RELAY_MASK
    assert (app._CHG_STOP, app._DSG_STOP) == (protect._CHG_STOP, protect._DSG_STOP)  # App.sample's fets_ok
    assert app._EV_CNT == protect._CNT  # App.sample pops events only when the ring holds some
    assert app._AFE_LOST_SAMPLES == pack._AFE_LOST_SAMPLES
