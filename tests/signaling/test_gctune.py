"""The collector tuning of a node: survivors are frozen, a full pass unfreezes when
connections have turned over (or on a timer), and stopping the tuner hands everything
back to the collector."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Iterator

import pytest

from signaling.gctune import MIN_CLOSED, GcTuner, full_pass
from tests.signaling.conftest import Server


class Cycle:
    def __init__(self) -> None:
        self.me = self


class Node:
    """Connection counts the tuner reads."""

    def __init__(self, live: int) -> None:
        self.live = live
        self.closed = 0

    def tuner(self, full_every: float = 0.0, interval: float = 0.01) -> GcTuner:
        return GcTuner(interval, full_every, closed=lambda: self.closed, live=lambda: self.live)


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


async def test_tuner_freezes_survivors_and_unfreezes_when_stopped() -> None:
    task = asyncio.create_task(Node(10).tuner().run())
    await asyncio.sleep(0.05)
    assert gc.get_freeze_count() > 0
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert gc.get_freeze_count() == 0


def test_full_pass_frees_frozen_cycles() -> None:
    Cycle()  # garbage at once, but only a collection can free a cycle
    gc.freeze()
    freed, seconds = full_pass()
    assert freed >= 1
    assert seconds >= 0


def test_a_full_pass_is_due_when_a_quarter_of_the_connections_closed() -> None:
    node = Node(live=1000)
    tuner = node.tuner()
    assert tuner.due(now=10.0) is None
    node.closed = 249
    assert tuner.due(now=10.0) is None
    node.closed = 250
    assert tuner.due(now=10.0) == "churn"
    tuner.step(now=10.0)  # the pass; the count starts again from here
    assert tuner.passes.count == 1
    assert tuner.due(now=11.0) is None
    node.closed += 249
    assert tuner.due(now=11.0) is None
    node.closed += 1
    assert tuner.due(now=11.0) == "churn"


def test_a_small_node_waits_for_a_minimum_of_closed_connections() -> None:
    node = Node(live=8)
    tuner = node.tuner()
    node.closed = MIN_CLOSED - 1
    assert tuner.due(now=1.0) is None
    node.closed = MIN_CLOSED
    assert tuner.due(now=1.0) == "churn"


def test_without_churn_only_the_timer_runs_a_full_pass() -> None:
    node = Node(live=15_000)
    never = node.tuner(full_every=0)
    hourly = node.tuner(full_every=3600)
    assert never.due(now=10_000.0) is None
    assert hourly.due(now=3599.0) is None
    assert hourly.due(now=3600.0) == "timer"
    hourly.step(now=3600.0)
    assert hourly.due(now=7199.0) is None


def test_a_step_without_a_pass_freezes_and_a_pass_frees_frozen_cycles(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="signaling.gctune")
    node = Node(live=100)
    tuner = node.tuner()
    Cycle()
    tuner.step(now=1.0)  # nothing due: the cycle is frozen now
    assert gc.get_freeze_count() > 0 and tuner.passes.count == 0
    node.closed = MIN_CLOSED
    tuner.step(now=2.0)
    assert tuner.passes.count == 1 and tuner.passes.freed >= 1
    assert any("full gc pass (churn" in r.getMessage() for r in caplog.records)


async def test_a_node_counts_closed_connections_and_reports_passes(server: Server) -> None:
    node = server.node
    before = node.counters.closed
    ws = await server.session.ws_connect(server.url + "/ws")
    await ws.close()
    for _ in range(100):  # the handler's cleanup runs after the close handshake
        if node.counters.closed > before:
            break
        await asyncio.sleep(0.02)
    assert node.counters.closed == before + 1
    node.gc.passes.count, node.gc.passes.seconds = 2, 1.5
    text = await (await server.session.get(server.url + "/metrics")).text()
    assert f"chatrooms_connections_closed_total {before + 1}.0" in text
    assert "chatrooms_gc_full_passes_total 2.0" in text
    assert "chatrooms_gc_full_pass_seconds_total 1.5" in text
