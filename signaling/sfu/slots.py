"""Slot selection: which audible speakers are heard in the K fixed audio slots.

Pure and deterministic: the same inputs give the same assignment on every node.
Ties are broken by user id, never by dict order or arrival.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .rtp import SILENT_LEVEL


@dataclass(frozen=True, slots=True)
class SlotPolicy:
    """Hysteresis of slot selection.

    A speaker outside the slots replaces the quietest slot holder only if louder by
    more than ``margin`` (in dB of smoothed loudness) and only once that holder has
    had the slot for ``min_hold`` seconds. With at most K audible speakers nobody
    ever switches.
    """

    margin: float = 6.0
    min_hold: float = 1.0


Assignment = tuple[str | None, ...]


def select_slots(
    current: Sequence[str | None],
    loudness: Mapping[str, float],
    held_since: Sequence[float],
    now: float,
    policy: SlotPolicy,
) -> Assignment:
    """Return the next slot assignment.

    ``current``: user id per slot (None = free). ``loudness``: smoothed loudness of
    every audible speaker (0 silent .. 127 loudest); users absent from it are not
    audible and lose their slot. ``held_since``: when each slot got its holder.
    """
    slots: list[str | None] = [u if u is not None and u in loudness else None for u in current]
    assigned = {u for u in slots if u is not None}
    waiting = sorted((u for u in loudness if u not in assigned), key=lambda u: (-loudness[u], u))
    # Fill free slots, lowest index first, loudest first.
    for i, holder in enumerate(slots):
        if holder is None and waiting:
            slots[i] = waiting.pop(0)
    # Contend for occupied slots, with hysteresis.
    replaced: set[int] = {i for i, u in enumerate(slots) if u is not None and u not in assigned}
    for challenger in list(waiting):
        victims = [
            i
            for i, holder in enumerate(slots)
            if holder is not None
            and i not in replaced
            and now - held_since[i] >= policy.min_hold
            and loudness[challenger] > loudness[holder] + policy.margin
        ]
        if not victims:
            break  # challengers are sorted loudest first: nobody after can win either
        # The quietest holder loses; ties: the greatest user id loses.
        victim = min(victims, key=lambda i: (loudness[slots[i] or ""], _neg(slots[i] or "")))
        slots[victim] = challenger
        replaced.add(victim)
    return tuple(slots)


def _neg(s: str) -> tuple[int, ...]:
    return tuple(-ord(c) for c in s)


class LevelMeter:
    """Smoothed loudness of one speaker from the RFC 6464 levels of its packets.

    ``add`` is called per packet; ``tick`` once per selection period folds the
    period's mean into an exponential average. A period without packets counts
    as silence (Opus DTX sends nothing while silent) once ``hold`` periods in a row
    had none: before that the level stands, since a busy event loop (a fan-out to
    thousands of connections) also leaves a period without packets, only late.
    """

    __slots__ = ("_count", "_empty", "_sum", "alpha", "hold", "value")

    def __init__(self, alpha: float = 0.5, hold: int = 1) -> None:
        self.alpha = alpha
        self.hold = max(1, hold)
        self.value = 0.0
        self._sum = 0
        self._count = 0
        self._empty = 0

    def add(self, level: int) -> None:
        self._sum += SILENT_LEVEL - level
        self._count += 1

    def tick(self) -> float:
        if not self._count:
            self._empty += 1
            if self._empty < self.hold:
                return self.value
        else:
            self._empty = 0
        mean = self._sum / self._count if self._count else 0.0
        self._sum = 0
        self._count = 0
        self.value = self.alpha * self.value + (1.0 - self.alpha) * mean
        return self.value

    @property
    def level_dbov(self) -> float:
        """The smoothed level as -dBov (0 loudest .. 127 silent)."""
        return SILENT_LEVEL - self.value
