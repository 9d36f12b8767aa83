"""Garbage collection for a node that holds many long-lived connections.

CPython's full (generation 2) collection walks every tracked object, and runs each
time the old generation has grown by a quarter. A node with thousands of WebSockets
holds a large heap of tracked objects that live as long as their connections: while
listeners joined, full passes came every few seconds, stalled the event loop for 0.3
to 0.7 s each and freed nothing (measured at 10,000 connections per node: 12 s of
pauses per node in an 80 s run).

So every ``interval`` seconds what has survived so far moves to the permanent
generation (``gc.freeze``), and full passes walk only what is newer. Young cyclic
garbage is still collected as before. A cycle among frozen objects that later becomes
garbage (say, a connection closed after a while) waits for the next ``full_every``
pass: unfreeze, one full collection (a known pause, logged), freeze again.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time

log = logging.getLogger(__name__)


def full_pass() -> tuple[int, float]:
    """Unfreeze, collect everything, freeze again: (objects freed, seconds)."""
    started = time.perf_counter()
    gc.unfreeze()
    freed = gc.collect()
    gc.freeze()
    return freed, time.perf_counter() - started


async def run_gc_tuner(interval: float, full_every: float) -> None:
    """Freeze survivors every ``interval`` s; a full pass every ``full_every`` s (0: never)."""
    loop = asyncio.get_running_loop()
    gc.freeze()
    last_full = loop.time()
    try:
        while True:
            await asyncio.sleep(interval)
            if full_every > 0 and loop.time() - last_full >= full_every:
                freed, took = full_pass()
                last_full = loop.time()
                log.info("full gc pass: %d objects freed in %.0f ms", freed, took * 1000)
            else:
                gc.freeze()
    finally:
        gc.unfreeze()  # stopped (shutdown): the collector sees everything again
