"""The collector tuning of a node: survivors are frozen, a full pass unfreezes, and
stopping the tuner hands everything back to the collector."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest

from signaling.gctune import full_pass, run_gc_tuner


class Cycle:
    def __init__(self) -> None:
        self.me = self


async def test_tuner_freezes_survivors_and_unfreezes_when_stopped() -> None:
    gc.unfreeze()
    task = asyncio.create_task(run_gc_tuner(interval=0.01, full_every=0))
    await asyncio.sleep(0.05)
    assert gc.get_freeze_count() > 0
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert gc.get_freeze_count() == 0


async def test_full_pass_frees_frozen_cycles() -> None:
    gc.unfreeze()
    Cycle()  # garbage at once, but only a collection can free a cycle
    gc.freeze()
    try:
        freed, seconds = full_pass()
        assert freed >= 1
        assert seconds >= 0
    finally:
        gc.unfreeze()


async def test_tuner_runs_full_passes(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="signaling.gctune")
    gc.unfreeze()
    task = asyncio.create_task(run_gc_tuner(interval=0.01, full_every=0.02))
    await asyncio.sleep(0.03)
    Cycle()
    await asyncio.sleep(0.1)  # several intervals: at least one full pass
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert gc.get_freeze_count() == 0
    assert any("full gc pass" in r.getMessage() for r in caplog.records)
