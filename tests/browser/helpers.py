"""Waiting on conditions in the page, and reading its audio statistics."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from playwright.async_api import Page, expect

WAIT = 30.0  # seconds: generous, conditions are polled; nothing asserts on elapsed time


async def eventually(
    probe: Callable[[], Awaitable[Any]],
    check: Callable[[Any], bool],
    *,
    limit: float = WAIT,
    what: str = "condition",
) -> Any:
    """Poll ``probe`` until ``check`` holds for its value; fail with the last value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    value = None
    while loop.time() < deadline:
        value = await probe()
        if check(value):
            return value
        await asyncio.sleep(0.2)
    raise AssertionError(f"{what} not reached; last value: {value!r}")


async def inbound(page: Page) -> dict[str, Any]:
    """Totals over every inbound-rtp audio stream of the page's peer connection."""
    stats: dict[str, Any] = await page.evaluate(
        """async () => {
            const pc = window.chatrooms && window.chatrooms.pc;
            const out = {packets: 0, level: 0, streams: 0, state: pc ? pc.connectionState : "none"};
            if (!pc) return out;
            (await pc.getStats()).forEach((r) => {
                if (r.type === "inbound-rtp" && r.kind === "audio") {
                    out.streams += 1;
                    out.packets += r.packetsReceived || 0;
                    out.level = Math.max(out.level, r.audioLevel || 0);
                }
            });
            return out;
        }"""
    )
    return stats


async def packets_growing(page: Page, *, window: float = 1.5) -> tuple[float, float]:
    """Inbound packets now and ``window`` seconds later."""
    before = (await inbound(page))["packets"]
    await asyncio.sleep(window)
    after = (await inbound(page))["packets"]
    return before, after


async def phase(page: Page) -> str:
    value: str = await page.evaluate("window.chatrooms ? window.chatrooms.client.phase : 'none'")
    return value


async def role(page: Page) -> str | None:
    value: str | None = await page.evaluate(
        "window.chatrooms?.client?.snap?.you ? window.chatrooms.client.snap.you.role : null"
    )
    return value


async def create_room(
    page: Page, *, name: str, title: str, topics: str, languages: str, stage: int = 5
) -> str:
    """Fill the lobby's form as a new guest; returns the room id from the URL."""
    await page.get_by_test_id("guest-name").fill(name)
    await page.get_by_test_id("create-title").fill(title)
    await page.get_by_test_id("create-topics").fill(topics)
    await page.get_by_test_id("create-languages").fill(languages)
    await page.get_by_test_id("create-stage-size").fill(str(stage))
    await page.get_by_test_id("create-submit").click()
    await expect(page.get_by_test_id("room-title")).to_have_text(title)
    return page.url.rsplit("/", 1)[-1]


async def join_from_lobby(page: Page, *, name: str, title: str) -> None:
    """As a new guest called ``name``, join the room called ``title`` from the lobby."""
    await page.get_by_test_id("guest-name").fill(name)
    card = page.get_by_test_id("room-card").filter(has_text=title)
    await card.get_by_test_id("join-room").click()
    await expect(page.get_by_test_id("room-title")).to_have_text(title)


async def media_connected(page: Page) -> None:
    await eventually(
        lambda: inbound(page), lambda s: s["state"] == "connected", what="peer connection"
    )


def tile(page: Page, name: str) -> Any:
    return page.get_by_test_id("stage-member").filter(has_text=name)


async def moderate(page: Page, name: str, action: str) -> None:
    """Open the Manage menu of the stage member called ``name`` and choose ``action``."""
    member = tile(page, name)
    await member.get_by_test_id("manage").click()
    await member.locator(f'[data-action="{action}"]').click()
