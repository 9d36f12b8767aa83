"""Slot selection: loudest audible speakers, with hysteresis, deterministic."""

from __future__ import annotations

import itertools

from signaling.sfu.slots import LevelMeter, SlotPolicy, select_slots

POLICY = SlotPolicy(margin=6.0, min_hold=1.0)


def test_fills_free_slots_loudest_first() -> None:
    got = select_slots(
        [None, None, None], {"a": 10, "b": 50, "c": 30, "d": 40}, [0, 0, 0], 5, POLICY
    )
    assert got == ("b", "d", "c")


def test_inaudible_loses_slot_and_holders_keep_index() -> None:
    got = select_slots(["a", "b", "c"], {"b": 1, "c": 2, "d": 0}, [0, 0, 0], 0.1, POLICY)
    assert got == ("d", "b", "c")


def test_hysteresis_margin_and_hold() -> None:
    current = ["a", "b"]
    # c is louder than b, but not by more than the margin: no switch.
    assert select_slots(current, {"a": 60, "b": 40, "c": 45}, [0, 0], 10, POLICY) == ("a", "b")
    # By more than the margin, after the hold time: b is replaced in place.
    assert select_slots(current, {"a": 60, "b": 40, "c": 47}, [0, 0], 10, POLICY) == ("a", "c")
    # Before the hold time of b: no switch.
    assert select_slots(current, {"a": 60, "b": 40, "c": 90}, [0, 9.5], 10, POLICY) == ("c", "b")


def test_no_switch_with_at_most_k_speakers() -> None:
    current: tuple[str | None, ...] = (None, None, None)
    held = [0.0, 0.0, 0.0]
    for step in range(50):
        levels = {"a": float(step % 7) * 20, "b": 100.0 - step, "c": float(step % 3) * 50}
        nxt = select_slots(current, levels, held, step * 0.1, POLICY)
        if step:
            assert nxt == current
        current = nxt
    assert set(current) == {"a", "b", "c"}


def test_no_flapping_between_close_speakers() -> None:
    current: tuple[str | None, ...] = ("a",)
    held = [0.0]
    switches = 0
    for step in range(100):  # d and a alternate being slightly louder
        levels = {"a": 50.0 + (3 if step % 2 else -3), "d": 50.0 + (-3 if step % 2 else 3)}
        nxt = select_slots(current, levels, held, step * 0.1, POLICY)
        if nxt != current:
            switches += 1
            held = [step * 0.1]
        current = nxt
    assert switches == 0


def test_deterministic_whatever_the_input_order() -> None:
    levels = {"u1": 30.0, "u2": 30.0, "u3": 30.0, "u4": 30.0, "u5": 80.0}
    results = set()
    for perm in itertools.permutations(levels):
        ordered = {k: levels[k] for k in perm}
        results.add(select_slots(["u1", "u2", None], ordered, [0, 0, 0], 5, POLICY))
    assert results == {("u1", "u2", "u5")}
    # Ties among holders: the greatest user id loses.
    results = set()
    for perm in itertools.permutations(["x", "y", "z"]):
        ordered = {k: 30.0 for k in perm} | {"w": 90.0}
        results.add(select_slots(["x", "y", "z"], ordered, [0, 0, 0], 5, POLICY))
    assert results == {("x", "y", "w")}


def test_level_meter() -> None:
    meter = LevelMeter(alpha=0.5)
    for level in (27, 27, 27):
        meter.add(level)
    assert meter.tick() == 50.0  # half of loudness 100
    assert meter.tick() == 25.0  # a silent period halves it
    assert meter.level_dbov == 102.0


def test_level_meter_holds_through_a_late_period() -> None:
    meter = LevelMeter(alpha=0.5, hold=3)
    meter.add(27)
    assert meter.tick() == 50.0
    assert meter.tick() == 50.0  # no packet in one period: late, not silent
    assert meter.tick() == 50.0
    assert meter.tick() == 25.0  # the third empty period in a row: silence
    meter.add(27)
    assert meter.tick() == 62.5  # packets again
    assert meter.tick() == 62.5
