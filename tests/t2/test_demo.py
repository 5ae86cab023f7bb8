"""T2: `packwatch demo` on the NMC scenario names the pack the virtual board runs, and counts exactly."""
import numpy as np

from hil.scenarios import get
from hil.plant import CHEMISTRY
from packwatch.demo import demo
from packwatch.logcsv import read_log


def test_demo_nmc_day_title_and_summary(tmp_path):
    lines = []
    csv_path, png, lg, fig = demo(tmp_path / "d", "nmc_day", hours=0.01, log=lines.append)
    sc = get("nmc_day")
    pack = "%dS %s" % (CHEMISTRY[sc.chemistry], sc.chemistry.upper())  # the plant's pack: 14S NMC
    assert pack == "14S NMC"
    log = read_log(csv_path)
    title = fig._suptitle.get_text()
    assert "nmc_day" in title and pack in title and "LFP" not in title and "16S" not in title, title
    rows = len(log)
    assert "%s rows" % format(rows, ",") in title and "~" not in title, (rows, title)
    # the log's own header agrees (what the firmware reported in its hdr)
    assert log.meta["chem"] == "nmc" and int(log.meta["cells"]) == 14 and log.n_cells == 14
    head = [s for s in lines if s.startswith("virtual board")]
    assert len(head) == 1 and pack in head[0] and "'nmc_day'" in head[0], lines
    summary = [s for s in lines if s.startswith("logged ")]
    assert summary == ["logged %d reports: crc errors 0, malformed 0, gaps 0, reboots 0" % rows], lines
    assert np.isfinite(log.cells_v).all() and open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
