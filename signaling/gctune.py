"""Garbage collection for a node that holds many long-lived connections.

CPython's full (generation 2) collection walks every tracked object, and runs each
time the old generation has grown by a quarter. A node with thousands of WebSockets
holds a large heap of tracked objects that live as long as their connections: while
listeners joined, full passes came every few seconds, stalled the event loop for 0.3
to 0.7 s each and freed nothing (measured at 10,000 connections per node: 12 s of
pauses per node in an 80 s run).

So every ``interval`` seconds what has survived so far moves to the permanent
generation (``gc.freeze``), and full passes walk only what is newer. Young cyclic
garbage is still collected as before. What a closed connection leaves behind was
frozen while it lived: if any of it is cyclic, only a full pass (unfreeze, collect,
freeze) can free it. A signaling connection leaves none (aiohttp's own cycle is broken
in signaling/aiohttp_internals.py; before, 27-35 objects per connection); a media
session's aiortc objects do (~560 objects per session, measured). That pass stops the
node for a time that grows with everything it holds (1.2-1.5 s at 15,000 connections,
docs/BENCHMARKS.md), so it runs when there is something to free: once the connections
closed since the last pass reach a quarter of those open (CPython's own rule for its
old generation, counted in connections), and otherwise every ``full_every`` seconds for
any other garbage.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

CHURN = 0.25  # closed since the last full pass, as a share of the open connections
MIN_CLOSED = 64  # ... and at least this many: a tiny node need not pass for a handful


def full_pass() -> tuple[int, float]:
    """Unfreeze, collect everything, freeze again: (objects freed, seconds)."""
    started = time.perf_counter()
    gc.unfreeze()
    freed = gc.collect()
    gc.freeze()
    return freed, time.perf_counter() - started


@dataclass(slots=True)
class FullPasses:
    """What the full passes cost so far, for /metrics."""

    count: int = 0
    seconds: float = 0.0
    freed: int = 0


class GcTuner:
    """Freezes survivors every ``interval`` s; a full pass on churn or every ``full_every`` s.

    ``closed`` counts the connections that ended so far, ``live`` those open now.
    ``full_every`` 0: no timed passes (churn still triggers them).
    """

    def __init__(
        self,
        interval: float,
        full_every: float,
        closed: Callable[[], int],
        live: Callable[[], int],
    ) -> None:
        self.interval = interval
        self.full_every = full_every
        self._closed = closed
        self._live = live
        self.passes = FullPasses()
        self._closed_at_pass = 0
        self._last_pass = 0.0

    def due(self, now: float) -> str | None:
        """Why a full pass is due now ("churn", "timer"), or None."""
        closed = self._closed() - self._closed_at_pass
        if closed >= max(MIN_CLOSED, CHURN * self._live()):
            return "churn"
        if self.full_every > 0 and now - self._last_pass >= self.full_every:
            return "timer"
        return None

    def step(self, now: float) -> None:
        reason = self.due(now)
        if reason is None:
            gc.freeze()
            return
        closed = self._closed()
        since = closed - self._closed_at_pass
        freed, took = full_pass()
        self._closed_at_pass, self._last_pass = closed, now
        self.passes.count += 1
        self.passes.seconds += took
        self.passes.freed += freed
        log.info(
            "full gc pass (%s, %d connections closed since the last): %d objects freed in %.0f ms",
            reason,
            since,
            freed,
            took * 1000,
        )

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        gc.freeze()
        self._last_pass = loop.time()
        self._closed_at_pass = self._closed()
        try:
            while True:
                await asyncio.sleep(self.interval)
                self.step(loop.time())
        finally:
            gc.unfreeze()  # stopped (shutdown): the collector sees everything again
