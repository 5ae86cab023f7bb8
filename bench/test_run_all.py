"""bench/run_all.stitch(): docs/benchmarks.md is rewritten from bench/results only when it is what the
last stitch wrote; a file edited by hand since is kept and the stitch goes beside it (`make bench-check`)."""

import pytest

import bench.run_all as R


@pytest.fixture
def tmp_results(tmp_path, monkeypatch):
    res = tmp_path / "results"
    res.mkdir()
    (res / "host.md").write_text("| a | b |\n|---|---|\n| 1 | 2 |\n")
    monkeypatch.setattr(R, "RESULTS", res)
    monkeypatch.setattr(R, "STAMP", res / "benchmarks.sha256")
    monkeypatch.setattr(R, "STITCHED", res / "benchmarks_stitched.md.tmp")
    return res


def test_a_new_file_is_written_and_a_rerun_rewrites_it(tmp_results, tmp_path):
    docs = tmp_path / "benchmarks.md"
    assert R.stitch(docs) and "| 1 | 2 |" in docs.read_text()
    (tmp_results / "host.md").write_text("| a | b |\n|---|---|\n| 3 | 4 |\n")
    assert R.stitch(docs) and "| 3 | 4 |" in docs.read_text() and "| 1 | 2 |" not in docs.read_text()


def test_hand_edits_are_never_overwritten(tmp_results, tmp_path):
    docs = tmp_path / "benchmarks.md"
    R.stitch(docs)
    docs.write_text(docs.read_text() + "\nSession notes: a before/after table that is in no results file.\n")
    kept = docs.read_bytes()
    (tmp_results / "host.md").write_text("| a | b |\n|---|---|\n| 3 | 4 |\n")
    assert not R.stitch(docs)
    assert docs.read_bytes() == kept  # not a byte changed
    assert "| 3 | 4 |" in (tmp_results / "benchmarks_stitched.md.tmp").read_text()

