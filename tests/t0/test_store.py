"""pwfw.store: two-slot persistence survives a torn write at any byte, garbage and missing files."""
import binascii

import pytest

from pwfw import store as S
from pwfw.store import Store

STATE = {"soc_pm": 734, "cap_mah": 98123, "boots": 17, "name": "pack-1", "cfg": {"cell_ov_mv": 3600}}


@pytest.fixture
def paths(tmp_path):
    return str(tmp_path / "state_a.bin"), str(tmp_path / "state_b.bin")


def fresh(paths):
    s = Store(*paths)
    return s, s.load()


def test_first_boot_has_nothing_and_is_not_corrupt(paths):
    s, d = fresh(paths)
    assert d is None and not s.corrupt and s.writes == 0


def test_round_trip(paths):
    s, _ = fresh(paths)
    assert s.save(STATE) is True and s.writes == 1
    s2, d = fresh(paths)
    assert d == STATE and not s2.corrupt


def test_save_without_load_first_still_alternates(paths):
    Store(*paths).save({"n": 1})
    Store(*paths).save({"n": 2})
    Store(*paths).save({"n": 3})
    assert fresh(paths)[1] == {"n": 3}
    assert sorted(S.unpack(open(p, "rb").read())[1]["n"] for p in paths) == [2, 3]


def test_newest_wins_and_slots_alternate(paths):
    s, _ = fresh(paths)
    for n in range(6):
        s.save({"n": n})
        assert fresh(paths)[1] == {"n": n}
        # the other slot keeps the previous record
        older = [S.unpack(open(p, "rb").read()) for p in paths if n or p == paths[0]]
        assert sorted(r[1]["n"] for r in older if r) == ([n - 1, n] if n else [0])
    assert s.writes == 6


def _two_records(paths):
    s, _ = fresh(paths)
    s.save({"soc_pm": 100, "v": "old"})
    s.save({"soc_pm": 200, "v": "new"})
    newest = paths[1]
    data = open(newest, "rb").read()
    assert S.unpack(data)[1]["v"] == "new"
    return newest, data


def test_torn_write_at_every_offset_falls_back_to_older_slot(paths):
    newest, data = _two_records(paths)
    for k in range(len(data)):
        with open(newest, "wb") as f:
            f.write(data[:k])
        s, d = fresh(paths)
        assert d == {"soc_pm": 100, "v": "old"}, k
        assert s.corrupt
        # the next save goes to the torn slot, never over the surviving one
        s.save({"soc_pm": 300})
        assert fresh(paths)[1] == {"soc_pm": 300}
        assert S.unpack(open(paths[0], "rb").read())[1]["v"] == "old"
        with open(newest, "wb") as f:
            f.write(data)


def test_corrupt_byte_at_every_offset_falls_back_to_older_slot(paths):
    newest, data = _two_records(paths)
    for k in range(len(data)):
        for flip in (0x01, 0x80, 0xFF):
            bad = bytearray(data)
            bad[k] ^= flip
            with open(newest, "wb") as f:
                f.write(bad)
            s, d = fresh(paths)
            assert d == {"soc_pm": 100, "v": "old"}, (k, flip)
            assert s.corrupt


def test_trailing_bytes_are_rejected(paths):
    newest, data = _two_records(paths)
    with open(newest, "wb") as f:
        f.write(data + b"\x00")
    assert fresh(paths)[1]["v"] == "old"


def test_both_corrupt_gives_none_and_corrupt_flag(paths):
    _two_records(paths)
    for p in paths:
        data = bytearray(open(p, "rb").read())
        data[-2] ^= 0x55
        open(p, "wb").write(data)
    s, d = fresh(paths)
    assert d is None and s.corrupt
    # and it recovers on the next save
    assert s.save({"x": 1})
    s2, d2 = fresh(paths)
    assert d2 == {"x": 1} and s2.corrupt  # the other slot is still bad until overwritten
    s2.save({"x": 2})
    s3, d3 = fresh(paths)
    assert d3 == {"x": 2} and not s3.corrupt


@pytest.mark.parametrize(
    "garbage",
    [b"", b"\x00" * 16, b"\xff" * 4096, b"PWST", b"PWST\x01\x00\xff\xff" + b"\x00" * 100, bytes(range(256)) * 40],
)
def test_garbage_files(paths, garbage):
    for p in paths:
        open(p, "wb").write(garbage)
    s, d = fresh(paths)
    assert d is None and s.corrupt
    assert s.save(STATE) and fresh(paths)[1] == STATE


def test_valid_crc_but_not_a_dict_or_other_version_is_rejected(paths):
    good = S.pack({"a": 1}, 5)
    assert S.unpack(good) == (5, {"a": 1})
    payload = b"[1, 2]"
    head = good[:6] + len(payload).to_bytes(2, "little") + good[8:12]
    crc = binascii.crc32(payload, binascii.crc32(head)).to_bytes(4, "little")
    assert S.unpack(head + crc + payload) is None  # a CRC-valid list, not a dict
    v2 = bytearray(good)
    v2[4] = 2
    assert S.unpack(bytes(v2)) is None


def test_missing_one_file_is_not_corrupt(paths):
    s, _ = fresh(paths)
    s.save(STATE)
    s2, d = fresh(paths)
    assert d == STATE and not s2.corrupt


def test_sequence_wrap(paths):
    a, b = paths
    open(a, "wb").write(S.pack({"n": "before"}, S.SEQ_MASK))
    open(b, "wb").write(S.pack({"n": "after"}, 0))
    s, d = fresh(paths)
    assert d == {"n": "after"} and s.seq == 0
    s.save({"n": "next"})  # overwrites the slot holding SEQ_MASK with seq 1
    assert S.unpack(open(a, "rb").read()) == (1, {"n": "next"})
    assert fresh(paths)[1] == {"n": "next"}
    # and the same with the slots swapped
    open(a, "wb").write(S.pack({"n": "after"}, 0))
    open(b, "wb").write(S.pack({"n": "before"}, S.SEQ_MASK))
    assert fresh(paths)[1] == {"n": "after"}


def test_newer_is_serial_number_arithmetic():
    assert S.newer(1, 0) and not S.newer(0, 1) and not S.newer(3, 3)
    assert S.newer(0, S.SEQ_MASK) and not S.newer(S.SEQ_MASK, 0)
    assert S.newer(5, S.SEQ_MASK - 5)


def test_failed_write_is_counted_not_raised(tmp_path):
    s = Store(str(tmp_path / "no" / "a.bin"), str(tmp_path / "no" / "b.bin"))
    assert s.load() is None
    assert s.save(STATE) is False
    assert s.errors == 1 and s.writes == 0


def test_too_large_state_is_refused(paths):
    s, _ = fresh(paths)
    with pytest.raises(ValueError, match="too large"):
        s.save({"x": "y" * 3000})
    assert s.writes == 0


def test_rate_limit(paths):
    s = Store(*paths, period_ms=900000, soc_step_pm=50, gap_ms=300000)
    t0 = 1000
    assert not s.due(t0, 500)  # the period starts at boot
    assert not s.due(t0 + 899999, 500)
    assert s.due(t0 + 900000, 500)
    s.save({"soc_pm": 500}, t0 + 900000, 500)
    t1 = t0 + 900000
    assert not s.due(t1 + 299999, 300)  # a big SoC change, but too soon after the last save
    assert s.due(t1 + 300000, 549) is False  # less than the step
    assert s.due(t1 + 300000, 550)
    assert s.due(t1 + 300000, 450)
    assert not s.due(t1 + 300000, 451)
    assert s.writes == 1


def test_writes_per_day_are_bounded(paths):
    """Worst case: the SoC swings by more than the step every minute all day."""
    s = Store(*paths)
    t = 0
    s.due(t, 0)
    soc = 0
    for minute in range(24 * 60):
        t = (t + 60000) & ((1 << 30) - 1)
        soc = 1000 - soc
        if s.due(t, soc):
            s.save({"soc_pm": soc}, t, soc)
    assert s.writes == 24 * 60 // 5  # one per gap_ms: 288 a day


def test_a_full_heap_while_reading_is_not_a_corrupt_record(paths, monkeypatch):
    # the board reads its state at start-up's heap high-water mark; a MemoryError there once made a
    # good slot "corrupt", so the next save overwrote the newest record (seen: boots back to 1)
    s, _ = fresh(paths)
    s.save({"n": 1})
    s.save({"n": 2})
    real_open = open
    failed = []

    class Tight:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def seek(self, n):
            self.f.seek(n)

        def read(self, n):
            if not failed:
                failed.append(1)
                raise MemoryError
            return self.f.read(n)

    def tight_open(p, m="r"):
        return Tight(real_open(p, m)) if m == "rb" else real_open(p, m)

    monkeypatch.setattr("builtins.open", tight_open)
    s2, d = fresh(paths)
    assert failed and d == {"n": 2} and not s2.corrupt
    s2.save({"n": 3})  # goes to the older slot, never over the newest
    monkeypatch.undo()
    assert sorted(S.unpack(open(p, "rb").read())[1]["n"] for p in paths) == [2, 3]
