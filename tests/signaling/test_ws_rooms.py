"""Room flows over real WebSockets against a running app."""

from __future__ import annotations

import asyncio

from tests.signaling.conftest import Server


async def test_join_gets_a_versioned_snapshot_with_role(server: Server) -> None:
    room_id, host_token = await server.create_room(topics=["tech"], languages=["en", "zh"])
    host = await server.client(room_id, host_token)
    snap = host.joined["snapshot"]
    assert host.joined["protocol"] == 1
    assert snap["you"]["role"] == "host"
    assert snap["info"]["title"] == "Morning coffee"
    assert snap["info"]["topics"] == ["tech"] and snap["info"]["languages"] == ["en", "zh"]
    assert [m["user_id"] for m in snap["stage"]] == ["host"]
    assert snap["info"]["listener_count"] == 0

    ann = await server.join(room_id, "ann", binary=True)
    assert ann.joined["snapshot"]["you"]["role"] == "listener"
    assert ann.joined["snapshot"]["info"]["listener_count"] == 1
    assert ann.joined["snapshot"]["version"] == snap["version"]  # a listener join is unversioned
    stats = await host.expect("room_stats")
    assert stats["listeners"] == 1


async def test_raise_invite_accept_mute_and_step_down(server: Server) -> None:
    room_id, host_token = await server.create_room()
    host = await server.client(room_id, host_token)
    ann = await server.join(room_id, "ann")
    bob = await server.join(room_id, "bob", binary=True)

    await ann.ok("raise_hand")
    assert (await ann.expect("hand_raised"))["position"] == 1
    await bob.ok("raise_hand")
    raised = await host.expect("hand_raised", lambda m: m["user_id"] == "bob")
    assert raised["position"] == 2
    assert (await bob.expect("hand_raised", lambda m: m["user_id"] == "bob"))["position"] == 2

    await host.ok("invite", user_id="ann")
    invited = await ann.expect("speaker_invited")
    assert invited["user_id"] == "ann" and invited["by"] == "host"
    await ann.ok("accept_invite")
    changed = await bob.expect("role_changed")
    assert changed["user_id"] == "ann" and changed["role"] == "speaker"
    lowered = await bob.expect("hand_lowered", lambda m: m["user_id"] == "ann")
    assert lowered["position"] == 1  # bob moves up to 1
    # Coming on stage, ann gets a snapshot that shows the queue (the stage sees it).
    snap = (await ann.expect("snapshot"))["snapshot"]
    assert snap["you"]["role"] == "speaker" and snap["you"]["muted"] is True
    assert [q["user_id"] for q in snap["queue"]] == ["bob"]

    await ann.ok("unmute")
    assert (await bob.expect("mute_changed"))["muted"] is False
    await host.ok("mute", user_id="ann")
    forced = await bob.expect("mute_changed", lambda m: m["muted"])
    assert forced["forced"] is True
    await ann.refused("unmute", "forbidden")
    await host.ok("unmute", user_id="ann")  # lifts the force; the mic stays closed
    lifted = await ann.expect("mute_changed", lambda m: m["by"] == "host" and not m["forced"])
    assert lifted["muted"] is True
    await ann.ok("unmute")
    await ann.ok("step_down")
    down = await bob.expect("role_changed", lambda m: m["role"] == "listener")
    assert down["user_id"] == "ann" and down["previous"] == "speaker"


async def test_listeners_do_not_receive_queue_events(server: Server) -> None:
    room_id, host_token = await server.create_room()
    host = await server.client(room_id, host_token)
    ann = await server.join(room_id, "ann")
    quiet = await server.join(room_id, "quiet")
    await ann.ok("raise_hand")
    await host.expect("hand_raised")
    got = await quiet.drain(0.5)
    assert not [m for m in got if m["type"] in ("hand_raised", "speaker_invited")]
    # ...but the count of hands reaches them, coalesced.
    stats = [m for m in got if m["type"] == "room_stats"]
    assert stats and stats[-1]["queue_length"] == 1


async def test_kick_closes_with_reason_and_cools_down(server: Server) -> None:
    room_id, host_token = await server.create_room()
    host = await server.client(room_id, host_token)
    ann = await server.join(room_id, "ann")
    await host.ok("kick", user_id="ann")
    code, seen = await ann.closed()
    assert code == 4001
    assert any(m["type"] == "participant_kicked" for m in seen)
    bye = [m for m in seen if m["type"] == "bye"]
    assert bye and bye[0]["reason"] == "kicked"
    # Rejoining during the cool-down is refused with a typed error and a retry hint.
    ws = await server.session.ws_connect(server.url + "/ws")
    await ws.send_json({"type": "join", "room_id": room_id, "token": server.token("ann")})
    err = await ws.receive_json(timeout=5)
    assert err["type"] == "error" and err["code"] == "kicked" and err["retry_after"] > 0
    await ws.close()


async def test_ban_keeps_user_out(server: Server) -> None:
    room_id, host_token = await server.create_room()
    host = await server.client(room_id, host_token)
    ann = await server.join(room_id, "ann")
    await host.ok("ban", user_id="ann")
    code, _ = await ann.closed()
    assert code == 4002
    ws = await server.session.ws_connect(server.url + "/ws")
    await ws.send_json({"type": "join", "room_id": room_id, "token": server.token("ann")})
    err = await ws.receive_json(timeout=5)
    assert err["code"] == "banned"
    # The connection stays open: the same socket may join another room.
    other, _ = await server.create_room("host2")
    await ws.send_json({"type": "join", "room_id": other, "token": server.token("ann")})
    assert (await ws.receive_json(timeout=5))["type"] == "joined"
    await ws.close()


async def test_host_hand_over_to_oldest_moderator_then_speaker(server: Server) -> None:
    room_id, host_token = await server.create_room()
    host = await server.client(room_id, host_token)
    ann = await server.join(room_id, "ann")
    bob = await server.join(room_id, "bob")
    for user, client in (("ann", ann), ("bob", bob)):
        await host.ok("invite", user_id=user)
        await client.ok("accept_invite")
    await host.ok("add_moderator", user_id="bob")
    await host.ok("leave")
    code, _ = await host.closed()
    assert code == 1000
    changed = await ann.expect("role_changed", lambda m: m["role"] == "host")
    assert changed["user_id"] == "bob" and changed["by"] is None
    await bob.ok("leave")
    changed = await ann.expect("role_changed", lambda m: m["role"] == "host")
    assert changed["user_id"] == "ann"


async def test_lock_refuses_new_joins_and_end_closes_everyone(server: Server) -> None:
    room_id, host_token = await server.create_room()
    host = await server.client(room_id, host_token)
    ann = await server.join(room_id, "ann")
    await host.ok("lock")
    assert (await ann.expect("room_lock_changed"))["locked"] is True
    ws = await server.session.ws_connect(server.url + "/ws")
    await ws.send_json({"type": "join", "room_id": room_id, "token": server.token("cat")})
    assert (await ws.receive_json(timeout=5))["code"] == "room_locked"
    await ws.close()
    await host.ok("unlock")
    cat = await server.join(room_id, "cat")
    await host.ok("end_room")
    for client in (ann, cat):
        code, seen = await client.closed()
        assert code == 4003
        assert any(m["type"] == "room_ended" for m in seen)
    res = await server.session.get(f"{server.url}/api/rooms/{room_id}")
    assert res.status == 404


async def test_host_keeps_power_across_a_reconnect(server: Server) -> None:
    room_id, host_token = await server.create_room()
    host = await server.client(room_id, host_token)
    ann = await server.join(room_id, "ann")
    await host.ws.close()
    await asyncio.sleep(0.05)
    host = await server.client(room_id, host_token)
    assert host.joined["snapshot"]["you"]["role"] == "host"
    await host.ok("kick", user_id="ann")
    assert (await ann.closed())[0] == 4001


async def test_disconnected_participant_leaves_after_the_grace(server: Server) -> None:
    room_id, host_token = await server.create_room()
    host = await server.client(room_id, host_token)
    ann = await server.join(room_id, "ann")
    await host.ok("invite", user_id="ann")
    await ann.ok("accept_invite")
    await ann.ws.close()
    left = await host.expect("participant_left", timeout=5)
    assert left["user_id"] == "ann" and left["reason"] == "disconnected"


async def test_second_connection_replaces_the_first(server: Server) -> None:
    room_id, host_token = await server.create_room()
    await server.client(room_id, host_token)
    first = await server.join(room_id, "ann")
    second = await server.join(room_id, "ann")
    code, seen = await first.closed()
    assert code == 4009 and seen[-1]["reason"] == "replaced"
    await second.ok("raise_hand")


async def test_guest_joins_as_listener_and_can_rejoin_as_same_identity(server: Server) -> None:
    room_id, _ = await server.create_room()
    guest = await server.client(room_id, None, name="Wen")
    you = guest.joined["you"]
    assert you["guest"] is True and you["name"] == "Wen" and you["user_id"].startswith("guest-")
    assert guest.joined["snapshot"]["you"]["role"] == "listener"
    token = guest.joined["token"]
    await guest.close()
    again = await server.client(room_id, token)
    assert again.joined["you"]["user_id"] == you["user_id"]


async def test_resync_returns_the_current_snapshot(server: Server) -> None:
    room_id, host_token = await server.create_room()
    host = await server.client(room_id, host_token)
    await host.ok("lock")
    await host.send({"type": "resync"})
    snap = (await host.expect("snapshot"))["snapshot"]
    assert snap["info"]["locked"] is True
    assert snap["version"] == host.joined["snapshot"]["version"] + 1


async def test_ping_pong(server: Server) -> None:
    room_id, host_token = await server.create_room()
    host = await server.client(room_id, host_token)
    await host.send({"type": "ping", "id": 7})
    assert (await host.expect("pong"))["id"] == 7
