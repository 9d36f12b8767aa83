"""Moderation in real browsers: only the controls a role allows are shown, the queue is
worked from the host's panel, refusals from the server are shown, and the room ends."""

from __future__ import annotations

import re

from playwright.async_api import Page, expect

from tests.browser.conftest import Users
from tests.browser.helpers import create_room, join_from_lobby, moderate, role, tile

TITLE = "Book club"


async def raise_hand_by_keyboard(page: Page) -> None:
    """Reach the raise-hand button with Tab alone, and press it with Enter."""
    await page.locator("body").focus()
    for _ in range(40):
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement?.dataset?.testid") == "hand":
            break
    else:
        raise AssertionError("the raise-hand button is not reachable with Tab")
    await page.keyboard.press("Enter")


async def test_roles_queue_refusals_ban_and_end(users: Users) -> None:
    host = await users.open("host")
    await create_room(host, name="Alice", title=TITLE, topics="books", languages="en", stage=3)
    bob = await users.open("bob")
    await join_from_lobby(bob, name="Bob", title=TITLE)

    # A listener sees no moderation; a refused command is shown with the server's words.
    await expect(bob.get_by_test_id("manage")).to_have_count(0)
    await bob.evaluate("window.chatrooms.command({type: 'lock'})")
    await expect(bob.get_by_test_id("toast")).to_contain_text("a listener may not do this")

    # Hand up by keyboard; an invitation declined, then accepted.
    await raise_hand_by_keyboard(bob)
    await expect(bob.get_by_test_id("queue-position")).to_contain_text("number 1")
    entry = host.get_by_test_id("queue-entry").filter(has_text="Bob")
    await entry.get_by_test_id("invite").click()
    await expect(entry).to_contain_text("Invited")
    await bob.get_by_test_id("decline-invite").click()
    await expect(bob.get_by_test_id("invite-prompt")).to_have_count(0)
    await expect(entry.get_by_test_id("invite")).to_be_visible()
    await entry.get_by_test_id("invite").click()
    await bob.get_by_test_id("accept-invite").click()
    await expect(tile(host, "Bob")).to_contain_text("Speaker")
    await expect(host.get_by_test_id("queue-entry")).to_have_count(0)

    # Moderator: Bob gets the room controls but not "end", and no controls over the host.
    await moderate(host, "Bob", "add_moderator")
    await expect(tile(bob, "Bob")).to_contain_text("Moderator")
    await expect(bob.get_by_test_id("lock")).to_be_visible()
    await expect(bob.get_by_test_id("end-room")).to_have_count(0)
    await expect(tile(bob, "Alice").get_by_test_id("manage")).to_have_count(0)
    await expect(bob.get_by_test_id("step-down")).to_be_visible()

    carol = await users.open("carol")
    await join_from_lobby(carol, name="Carol", title=TITLE)
    await carol.get_by_test_id("hand").click()
    # A moderator works the queue too.
    await expect(bob.get_by_test_id("queue-entry").filter(has_text="Carol")).to_be_visible()

    await moderate(host, "Bob", "remove_moderator")
    await expect(tile(bob, "Bob")).to_contain_text("Speaker")
    await expect(bob.get_by_test_id("mod-panel")).to_have_count(0)
    await moderate(host, "Bob", "move_to_audience")
    await expect(bob.get_by_test_id("hand")).to_be_visible()
    assert await role(bob) == "listener"
    await expect(bob.get_by_test_id("toast").last).to_contain_text("moved you back")

    # Bob queues again, behind Carol; when she goes, he moves up to first.
    await bob.get_by_test_id("hand").click()
    await expect(bob.get_by_test_id("queue-position")).to_contain_text("number 2")
    await expect(host.get_by_test_id("queue-entry")).to_have_text(
        [re.compile("Carol"), re.compile("Bob")]
    )

    # Ban from the queue (confirmed in a dialog): Carol is told why.
    host.once("dialog", lambda d: d.accept())
    carol_entry = host.get_by_test_id("queue-entry").filter(has_text="Carol")
    await carol_entry.get_by_test_id("manage").click()
    await carol_entry.locator('[data-action="ban"]').click()
    await expect(carol.get_by_test_id("closed-reason")).to_contain_text("banned you")
    await expect(bob.get_by_test_id("queue-position")).to_contain_text("number 1")

    # Lock, then end the room for everyone.
    await host.get_by_test_id("lock").click()
    await expect(bob.get_by_test_id("locked")).to_be_visible()
    host.once("dialog", lambda d: d.accept())
    await host.get_by_test_id("end-room").click()
    await expect(bob.get_by_test_id("closed-reason")).to_have_text("This room has ended.")
    await expect(host.get_by_test_id("closed-reason")).to_have_text("This room has ended.")
