"""A whole room in real browsers: a host, a listener who raises a hand, is invited and
speaks; audio both ways through the SFU; moderation (mute, kick) as the users see it."""

from __future__ import annotations

import asyncio

from playwright.async_api import Page, expect

from tests.browser.conftest import OUT, Users
from tests.browser.helpers import (
    create_room,
    eventually,
    inbound,
    join_from_lobby,
    media_connected,
    moderate,
    packets_growing,
    role,
    tile,
)

TITLE = "Evening jazz"


async def hears(page: Page, what: str) -> None:
    """Inbound audio keeps arriving, and it is not silence."""
    await eventually(
        lambda: packets_growing(page, window=1.0),
        lambda ba: ba[1] > ba[0] + 10,
        what=f"{what}: inbound packets growing",
    )
    await eventually(lambda: inbound(page), lambda s: s["level"] > 0.01, what=f"{what}: level")


async def quiet(page: Page, what: str) -> None:
    """Inbound audio stops growing (a few packets in flight may still land first)."""

    async def settled() -> tuple[float, float]:
        return await packets_growing(page, window=1.5)

    await eventually(settled, lambda ba: ba[1] == ba[0], what=f"{what}: inbound stopped")


async def screenshots(host: Page, lobby: Page) -> None:
    """The pictures for the closing note: desktop and 375 px wide."""
    OUT.mkdir(exist_ok=True)
    await host.screenshot(path=str(OUT / "room.png"), full_page=True)
    await lobby.screenshot(path=str(OUT / "lobby.png"), full_page=True)
    for page, name in ((host, "room"), (lobby, "lobby")):
        size = page.viewport_size
        await page.set_viewport_size({"width": 375, "height": 812})
        await asyncio.sleep(0.3)
        await page.screenshot(path=str(OUT / f"{name}-375.png"), full_page=True)
        if size:
            await page.set_viewport_size(size)


async def test_hand_invite_speak_mute_kick(users: Users) -> None:
    host = await users.open("host")
    await create_room(host, name="Alice", title=TITLE, topics="music, jazz", languages="en, zh")
    await media_connected(host)

    bob = await users.open("bob")
    await join_from_lobby(bob, name="Bob", title=TITLE)
    await media_connected(bob)
    assert await role(bob) == "listener"
    await expect(bob.get_by_test_id("mod-panel")).to_have_count(0)
    await expect(bob.get_by_test_id("mic")).to_have_count(0)
    # The host starts muted: the listener hears nothing yet.
    assert (await packets_growing(bob, window=1.5)) == (0, 0)

    # Bob raises a hand and sees his place; the host sees him in the queue and invites.
    await bob.get_by_test_id("hand").click()
    await expect(bob.get_by_test_id("queue-position")).to_contain_text("number 1")
    entry = host.get_by_test_id("queue-entry").filter(has_text="Bob")
    await expect(entry).to_be_visible()
    await entry.get_by_test_id("invite").click()
    prompt = bob.get_by_test_id("invite-prompt")
    await expect(prompt).to_be_visible()
    await prompt.get_by_test_id("accept-invite").click()
    await expect(tile(host, "Bob")).to_contain_text("Speaker")
    await expect(tile(bob, "Bob")).to_contain_text("(you)")
    await expect(bob.get_by_test_id("mic")).to_have_text("Unmute")
    assert await role(bob) == "speaker"

    # The host unmutes: Bob hears her.
    await host.get_by_test_id("mic").click()
    await expect(host.get_by_test_id("mic")).to_have_text("Mute")
    await hears(bob, "bob hears alice")
    # Bob unmutes: the host hears him, and his ring lights on her page.
    await bob.get_by_test_id("mic").click()
    await expect(bob.get_by_test_id("mic")).to_have_text("Mute")
    await hears(host, "alice hears bob")
    await expect(tile(host, "Bob")).to_have_class("tile speaking")

    lobby = await users.open("lobby")
    await expect(lobby.get_by_test_id("room-card")).to_contain_text("Bob")
    await screenshots(host, lobby)

    # The host force-mutes Bob: his audio stops reaching her (she does not hear herself,
    # so everything she receives is his), his mic control locks and his track is off.
    await moderate(host, "Bob", "force_mute")
    await expect(bob.get_by_test_id("mic")).to_have_text("Muted by a moderator")
    await expect(bob.get_by_test_id("mic")).to_be_disabled()
    await expect(tile(host, "Bob")).to_have_attribute("data-muted", "true")
    assert await bob.evaluate("window.chatrooms.media.micTrack.enabled") is False
    await quiet(host, "alice after muting bob")
    # ... while Bob still hears the host.
    await hears(bob, "bob still hears alice")

    # Kicked: Bob is told why, and leaves the stage of everyone else.
    await moderate(host, "Bob", "kick")
    reason = bob.get_by_test_id("closed-reason")
    await expect(reason).to_contain_text("A moderator removed you from this room.")
    await expect(reason).to_contain_text("come back in about 5 min")
    await expect(host.get_by_test_id("stage-member")).to_have_count(1)
