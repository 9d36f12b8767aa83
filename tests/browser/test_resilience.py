"""Drops and recoveries in real browsers: the WebSocket, the peer connection, a reload,
a version gap; and a microphone the user refused."""

from __future__ import annotations

from playwright.async_api import Page, expect

from tests.browser.conftest import Users
from tests.browser.helpers import (
    create_room,
    eventually,
    inbound,
    join_from_lobby,
    media_connected,
    packets_growing,
    phase,
    role,
)
from tests.browser.test_room import hears
from tests.signaling.conftest import Server

TITLE = "Night owls"

DROP_SOCKET = """async () => {
    // Cut the WebSocket as a network drop would, then report what the page says.
    window.chatrooms.client.ws.close();
    for (let i = 0; i < 600; i++) {
        const el = document.querySelector('[data-testid="reconnecting"]');
        if (el) return el.textContent;
        await new Promise((r) => setTimeout(r, 5));
    }
    return null;
}"""


async def host_and_listener(users: Users) -> tuple[Page, Page]:
    host = await users.open("host")
    await create_room(host, name="Alice", title=TITLE, topics="talk", languages="en")
    await media_connected(host)
    bob = await users.open("bob")
    await join_from_lobby(bob, name="Bob", title=TITLE)
    await media_connected(bob)
    await host.get_by_test_id("mic").click()
    await hears(bob, "bob hears alice")
    return host, bob


async def test_dropped_socket_and_reload_keep_the_host_role_and_audio(users: Users) -> None:
    host, bob = await host_and_listener(users)
    said = await host.evaluate(DROP_SOCKET)
    assert said is not None and "Reconnecting" in said
    await eventually(lambda: phase(host), lambda p: p == "live", what="host back")
    assert await role(host) == "host"
    await expect(host.get_by_test_id("mod-panel")).to_be_visible()
    await expect(host.get_by_test_id("mic")).to_have_text("Mute")  # still unmuted
    await media_connected(host)
    await hears(bob, "bob hears alice after her reconnect")

    # A reload: the page rejoins with the host token it kept for this room.
    await host.reload()
    await expect(host.get_by_test_id("room-title")).to_have_text(TITLE)
    await eventually(lambda: role(host), lambda r: r == "host", what="host after reload")
    await expect(host.get_by_test_id("mod-panel")).to_be_visible()
    await media_connected(host)
    await hears(bob, "bob hears alice after her reload")

    # The listener drops too, and comes back a listener who still hears.
    said = await bob.evaluate(DROP_SOCKET)
    assert said is not None
    await eventually(lambda: phase(bob), lambda p: p == "live", what="bob back")
    assert await role(bob) == "listener"
    await media_connected(bob)
    await hears(bob, "bob hears alice after his reconnect")


async def test_server_closed_peer_connection_is_offered_again(users: Users, server: Server) -> None:
    _, bob = await host_and_listener(users)
    room_id, user_id = await bob.evaluate(
        "[window.chatrooms.client.roomId, window.chatrooms.client.you.user_id]"
    )
    old_pc = await bob.evaluate_handle("window.chatrooms.pc")
    session = server.node.media.sfu.session(room_id, user_id)
    assert session is not None
    await session.close()  # the server says rtc_closed: the page makes a new connection
    await eventually(
        lambda: bob.evaluate("(old) => window.chatrooms.pc !== old", old_pc),
        bool,
        what="a new peer connection",
    )
    await media_connected(bob)
    await hears(bob, "bob hears alice on the new connection")


async def test_version_gap_asks_for_a_snapshot(users: Users) -> None:
    host, bob = await host_and_listener(users)
    await bob.evaluate(
        """() => {
            const c = window.chatrooms.client;
            window.sentTypes = [];
            const send = c.ws.send.bind(c.ws);
            c.ws.send = (data) => { window.sentTypes.push(JSON.parse(data).type); send(data); };
            c.snap.version -= 1;  // as if one event had been lost
        }"""
    )
    await host.get_by_test_id("lock").click()
    await expect(bob.get_by_test_id("locked")).to_be_visible()
    assert "resync" in await bob.evaluate("window.sentTypes")
    # An old event is ignored: the state keeps the newest version.
    version = await bob.evaluate("window.chatrooms.client.snap.version")
    await bob.evaluate(
        """(v) => window.chatrooms.client._receive({type: "room_lock_changed",
               version: v - 1, locked: false, by: "x", room_id: "r"})""",
        version,
    )
    await expect(bob.get_by_test_id("locked")).to_be_visible()
    await host.get_by_test_id("lock").click()  # unlock: the next event applies normally
    await expect(bob.get_by_test_id("locked")).to_have_count(0)


DENY_MIC = """
Object.defineProperty(navigator.mediaDevices, "getUserMedia", {
    value: () => Promise.reject(new DOMException("Permission denied", "NotAllowedError")),
});
"""


async def test_denied_microphone_is_explained(users: Users) -> None:
    host = await users.open("host", init_script=DENY_MIC)
    await create_room(host, name="Alice", title=TITLE, topics="talk", languages="en")
    notice = host.get_by_test_id("mic-error")
    await expect(notice).to_contain_text("Microphone access was denied")
    await host.get_by_test_id("mic").click()
    await expect(host.get_by_test_id("mic")).to_have_text("Unmute")  # not unmuted
    await media_connected(host)  # listening still works without a microphone
    assert (await inbound(host))["state"] == "connected"
    assert await packets_growing(host, window=0.5) == (0, 0)
