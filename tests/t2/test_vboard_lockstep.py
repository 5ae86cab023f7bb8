"""T2: the runner's pipelining (steps computed ahead of the firmware, undone when it asks otherwise)
gives exactly the lockstep run: the same plant trajectory and the same telemetry, bit for bit."""
MIN = 60_000


def run(board, pipeline, end_ms):
    c = board("deep_discharge", seed=3, truth_every_ms=100, pipeline=pipeline)
    c.vb.hold_at_ms = end_ms  # both runs stop at the same virtual instant
    c.until(lambda t, f: t == "rep" and f["ms"] > end_ms - 1000, timeout=120, what="the last report")
    while not c.vb.held:  # and it stands there: every step up to the hold is in the truth
        c.read()
    return c.vb.truth, [f for f in c.frames], c.vb.spec_hits, c.vb.spec_misses


def test_steps_computed_ahead_give_exactly_the_lockstep_run(board):
    # deep_discharge: 60 A from 15 % until the under-voltage alarm opens the relay (~15 min), so the
    # firmware changes its request under speculation and the runner has to undo steps
    end = 25 * MIN
    truth_a, frames_a, hits, misses = run(board, True, end)
    truth_b, frames_b, hits_b, misses_b = run(board, False, end)
    assert hits > 10_000 and misses >= 1  # pipelined, and the relay opening was a step it had to undo
    assert hits_b == misses_b == 0
    assert len(truth_a) == len(truth_b) >= end // 100 - 2  # every step (from the first after boot)
    assert truth_a == truth_b
    assert any(row[1] == 0 for row in truth_a[-100:])  # the relay did open (no current at the end)
    # the firmware saw the same plant: the same frames (reports, events) up to the hold
    reps = [f for t, f in frames_a if t == "rep"]
    assert len(reps) >= 25 * 60 - 2 and [e for t, e in frames_a if t == "evt" and e["name"] == "cell_uv"]
    n = min(len(frames_a), len(frames_b))
    assert frames_a[:n] == frames_b[:n] and n >= len(reps)


def test_a_hold_stops_the_firmware_where_the_plant_is(board):
    """freeze() (hold_at_ms = where the runner last heard of the firmware): the firmware stands still
    at its last step before the hold with the plant not one step ahead of it. The runner sends replies
    ahead (up to 8) and cannot take them back, so the firmware takes them and the hold moves to the
    last one's end. On the old runner the hold stayed behind the firmware by the replies it had sent
    ahead: the plant was past hold_at_ms and the truth behind the plant (fails the first assertion)."""
    c = board("day", truth_every_ms=1)  # every step's truth: its last row is the firmware's last step
    c.until(lambda t, f: t == "rep", what="first report")
    vb = c.vb
    for _ in range(5):
        h = c.freeze()
        assert vb.plant.t_ms == vb.truth[-1][0] == vb.t_ms <= h, (vb.plant.t_ms, vb.truth[-1][0], vb.t_ms, h)
        c.advance(1000)  # the firmware's next step would pass the new hold (steps of at most 100 ms)
        assert vb.plant.t_ms == vb.truth[-1][0] <= h + 1000 < vb.plant.t_ms + 100
        vb.hold_at_ms = None
        n = len(c.reports())
        c.until(lambda t, f: t == "rep" and len(c.reports()) > n + 2, what="reports after the hold")
