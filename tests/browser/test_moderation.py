"""Moderation in real browsers: only the controls a role allows are shown, the queue is
worked from the host's panel, refusals from the server are shown, and the room ends."""

from __future__ import annotations

import re

from playwright.async_api import Page, expect

from tests.browser.conftest import Users
from tests.browser.helpers import create_room, join_from_lobby, moderate, role, tile
from tests.signaling.conftest import Server

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


async def test_host_invites_a_listener_from_the_audience_list(users: Users, server: Server) -> None:
    host = await users.open("host")
    room_id = await create_room(
        host, name="Alice", title="Quiet corner", topics="books", languages="en"
    )
    # The list is pulled when the panel is opened: empty at first.
    await host.get_by_test_id("audience-toggle").click()
    await expect(host.get_by_test_id("audience-empty")).to_be_visible()
    dave = await users.open("dave")
    await join_from_lobby(dave, name="Dave", title="Quiet corner")
    # A join is not pushed into the list; "Refresh" pulls it.
    await expect(host.get_by_test_id("audience-count")).to_contain_text("1 listening")
    await expect(host.get_by_test_id("audience-entry")).to_have_count(0)
    await host.get_by_test_id("audience-refresh").click()
    entry = host.get_by_test_id("audience-entry").filter(has_text="Dave")
    await expect(entry).to_be_visible()
    await expect(host.get_by_test_id("audience-shown")).to_have_text("1 of 1 listeners shown.")
    # Dave never raised a hand, and the host has the same Manage actions as elsewhere.
    await expect(host.get_by_test_id("queue-entry")).to_have_count(0)
    await entry.get_by_test_id("manage").click()
    for action in ("add_moderator", "kick", "ban"):
        await expect(entry.locator(f'[data-action="{action}"]')).to_be_visible()
    await entry.get_by_test_id("manage").click()
    await entry.get_by_test_id("invite").click()
    await expect(entry).to_contain_text("Invited")
    await dave.get_by_test_id("accept-invite").click()
    await expect(tile(host, "Dave")).to_contain_text("Speaker")
    # On stage, Dave is no longer listed as a listener.
    await expect(host.get_by_test_id("audience-entry")).to_have_count(0)
    await host.get_by_test_id("audience-refresh").click()
    await expect(host.get_by_test_id("audience-empty")).to_be_visible()
    # Dave, a speaker, cannot list the audience.
    await expect(dave.get_by_test_id("audience-panel")).to_have_count(0)

    # A crowd comes in over plain WebSockets: the list shows a page, then the rest.
    crowd = [await server.join(room_id, f"bot{i:02}") for i in range(55)]
    await host.get_by_test_id("audience-refresh").click()
    await expect(host.get_by_test_id("audience-entry")).to_have_count(50)
    await expect(host.get_by_test_id("audience-shown")).to_have_text("50 of 55 listeners shown.")
    await host.get_by_test_id("audience-more").click()
    await expect(host.get_by_test_id("audience-entry")).to_have_count(55)
    await expect(host.get_by_test_id("audience-more")).to_have_count(0)
    # Closing and opening the panel fetches it again.
    await crowd[0].ok("leave")
    await host.get_by_test_id("audience-toggle").click()
    await host.get_by_test_id("audience-toggle").click()
    await expect(host.get_by_test_id("audience-entry")).to_have_count(50)
    await expect(host.get_by_test_id("audience-shown")).to_have_text("50 of 54 listeners shown.")
