"""The slot munger keeps one continuous stream per slot."""

from __future__ import annotations

from signaling.sfu.munger import MIN_SWITCH_STEP, SlotMunger


def feed(m: SlotMunger, src: str, seqs: list[int], ts0: int, now0: float) -> list[tuple[int, int]]:
    out = []
    for i, seq in enumerate(seqs):
        r = m.rewrite(src, seq, (ts0 + 960 * i) & 0xFFFFFFFF, now0 + 0.02 * i)
        assert r is not None
        out.append((r.sequence_number, r.timestamp))
    return out


def test_continuous_across_switches() -> None:
    m = SlotMunger(initial_seq=1000, initial_ts=5000)
    m.switch("a")
    a = feed(m, "a", list(range(65530, 65536)) + list(range(0, 4)), ts0=2**32 - 2000, now0=0.0)
    assert [s for s, _ in a] == list(range(1000, 1010))
    assert [t for _, t in a] == [5000 + 960 * i for i in range(10)]
    # b takes the slot 1 s after a's last packet.
    m.switch("b")
    assert m.rewrite("a", 5, 0, 1.0) is None  # a is no longer in this slot
    first = m.rewrite("b", 40000, 123, 0.18 + 1.0)
    assert first is not None and first.marker
    assert first.sequence_number == 1010
    assert first.timestamp == 5000 + 960 * 9 + 48000
    nxt = m.rewrite("b", 40001, 123 + 960, 1.2)
    assert nxt is not None and not nxt.marker
    assert (nxt.sequence_number, nxt.timestamp) == (1011, first.timestamp + 960)


def test_old_packets_of_new_speaker_are_dropped() -> None:
    m = SlotMunger(initial_seq=10, initial_ts=0)
    m.switch("a")
    assert m.rewrite("a", 500, 0, 0.0) is not None
    assert m.rewrite("a", 499, 0, 0.0) is None  # before the switch point: would reuse seq 9
    late = m.rewrite("a", 502, 1920, 0.04)
    reordered = m.rewrite("a", 501, 960, 0.05)
    assert late is not None and reordered is not None
    assert (late.sequence_number, reordered.sequence_number) == (12, 11)
    assert m.last_sequence_number == 12  # the reordered packet does not move it back


def test_minimum_step_and_idle() -> None:
    m = SlotMunger(initial_seq=0, initial_ts=0)
    assert m.rewrite("a", 1, 1, 0.0) is None  # nobody mapped yet
    m.switch("a")
    r = m.rewrite("a", 7, 70, 0.0)
    assert r is not None and (r.sequence_number, r.timestamp) == (0, 0)
    m.switch(None)
    m.switch("b")
    r = m.rewrite("b", 3, 3, 0.0)  # immediately: at least one frame later
    assert r is not None and (r.sequence_number, r.timestamp) == (1, MIN_SWITCH_STEP)
    assert m.timestamp_at(0.5) == MIN_SWITCH_STEP + 24000
    m.switch("b")  # same speaker again: no new offsets, no marker
    r = m.rewrite("b", 4, 963, 0.02)
    assert r is not None and not r.marker and r.sequence_number == 2


def test_a_new_stream_of_the_same_speaker_continues_the_slot() -> None:
    """A speaker who reconnected sends a new stream numbered anywhere, even behind the
    old one: after ``restart`` it continues the slot's numbering, marker set."""
    m = SlotMunger(initial_seq=100, initial_ts=0)
    m.switch("a")
    old = feed(m, "a", [30000, 30001, 30002], ts0=9000, now0=0.0)
    assert [s for s, _ in old] == [100, 101, 102]
    assert m.rewrite("a", 25000, 1234, 0.5) is None  # without restart: taken as stale
    m.restart()
    first = m.rewrite("a", 25000, 1234, 0.5)
    assert first is not None and first.marker and first.sequence_number == 103
    assert first.timestamp == old[-1][1] + round(0.46 * 48000)
    nxt = m.rewrite("a", 25001, 1234 + 960, 0.52)
    assert nxt is not None and not nxt.marker and nxt.sequence_number == 104
    m.switch(None)
    m.restart()  # nobody in the slot: nothing to restart
    assert m.rewrite("a", 25002, 0, 0.6) is None
