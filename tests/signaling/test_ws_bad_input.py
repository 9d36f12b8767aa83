"""Bad input gets a typed error, changes nothing, and the connection and room survive."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import jwt
import msgpack
import pytest

from chatrooms.ids import RoomId, UserId
from tests.signaling.conftest import SECRET, Client, Server


async def _raw(server: Server) -> aiohttp.ClientWebSocketResponse:
    return await server.session.ws_connect(server.url + "/ws")


async def _join_error(server: Server, msg: dict[str, Any]) -> dict[str, Any]:
    ws = await _raw(server)
    await ws.send_json(msg)
    reply: dict[str, Any] = await ws.receive_json(timeout=5)
    await ws.close()
    return reply


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"\xc1\xff\x00", "malformed"),  # 0xc1 is never valid msgpack
        (msgpack.packb([1, 2, 3]), "invalid_message"),
        (msgpack.packb({"type": 5}), "invalid_message"),
        (msgpack.packb({"type": "fly", "id": 3}), "unknown_type"),
        (msgpack.packb({"type": "invite", "id": 4}), "invalid_field"),  # missing user_id
        (msgpack.packb({"type": "invite", "user_id": 12}), "invalid_field"),
        (msgpack.packb({"type": "invite", "user_id": "x" * 65}), "invalid_field"),
        (msgpack.packb({"type": "raise_hand", "extra": True}), "invalid_field"),
        (msgpack.packb({"type": "raise_hand", "id": "7"}), "invalid_field"),
        ("{not json", "malformed"),
        ('"a string"', "invalid_message"),
        ('{"type": "kick", "user_id": ["a"]}', "invalid_field"),
        ('{"type": "join", "room_id": "r"}', "already_joined"),
    ],
)
async def test_bad_frames_get_typed_errors(server: Server, frame: bytes | str, code: str) -> None:
    room_id, host_token = await server.create_room()
    host = await server.client(room_id, host_token)
    ann = await server.join(room_id, "ann")
    room = server.node.backends.store.cached(RoomId(room_id))
    assert room is not None
    before = room.snapshot_for(UserId("host"))
    if isinstance(frame, bytes):
        await ann.ws.send_bytes(frame)
    else:
        await ann.ws.send_str(frame)
    err = await ann.expect("error")
    assert err["code"] == code, err
    assert room.snapshot_for(UserId("host")) == before
    # Still connected and still in the room.
    await ann.ok("raise_hand")
    assert (await host.expect("hand_raised"))["user_id"] == "ann"


async def test_request_id_is_echoed_in_errors(server: Server) -> None:
    room_id, host_token = await server.create_room()
    host = await server.client(room_id, host_token)
    await host.ws.send_str(json.dumps({"type": "teleport", "id": 41}))
    err = await host.expect("error")
    assert err["id"] == 41 and err["code"] == "unknown_type"


async def test_oversized_frame_closes_with_1009(server: Server) -> None:
    room_id, host_token = await server.create_room()
    host = await server.client(room_id, host_token)
    ann = await server.join(room_id, "ann")
    limit = server.node.settings.max_message_size
    await ann.ws.send_bytes(msgpack.packb({"type": "raise_hand", "pad": "x" * (limit + 1)}))
    code, _ = await ann.closed()
    assert code == 1009
    # The room carries on for everyone else.
    await host.ok("lock")


async def test_a_flood_is_rate_limited_and_harms_nobody(server: Server) -> None:
    room_id, host_token = await server.create_room()
    host = await server.client(room_id, host_token)
    flooder = await server.join(room_id, "flood")
    bob = await server.join(room_id, "bob")
    burst = server.node.settings.command_burst
    for i in range(burst * 5):
        await flooder.send({"type": "ping", "id": i})
    got = await flooder.drain(0.3)
    pongs = [m for m in got if m["type"] == "pong"]
    limited = [m for m in got if m["type"] == "error" and m["code"] == "rate_limited"]
    assert burst <= len(pongs) < burst * 5
    assert 1 <= len(limited) <= 3  # one error per burst, not one per dropped frame
    # Everyone else is served, and the flooder recovers once it slows down.
    await bob.ok("raise_hand")
    await host.expect("hand_raised")
    await asyncio.sleep(1.0 / server.node.settings.commands_per_second * 2)
    await flooder.ok("raise_hand")
    metrics = await (await server.session.get(server.url + "/metrics")).text()
    assert 'chatrooms_errors_total{code="rate_limited"}' in metrics


async def test_command_before_join_is_refused_and_join_still_works(server: Server) -> None:
    room_id, _ = await server.create_room()
    ws = await _raw(server)
    await ws.send_json({"type": "raise_hand", "id": 1})
    err = await ws.receive_json(timeout=5)
    assert err["code"] == "not_joined" and err["id"] == 1
    await ws.send_json({"type": "join", "room_id": room_id})
    assert (await ws.receive_json(timeout=5))["type"] == "joined"
    await ws.close()


def _token(claims: dict[str, Any], key: str = SECRET) -> str:
    base = {"sub": "ann", "name": "Ann", "iat": int(time.time())}
    return jwt.encode({**base, **claims}, key, algorithm="HS256")


@pytest.mark.parametrize(
    ("token", "code"),
    [
        (_token({"exp": int(time.time()) - 10}), "token_expired"),
        (
            _token({"exp": int(time.time()) + 3600}, key="another-key-of-sufficient-length"),
            "token_invalid",
        ),
        ("not.a.token", "token_invalid"),
        (_token({}), "token_invalid"),  # no exp
        (_token({"exp": int(time.time()) + 3600, "rooms": {"r": "emperor"}}), "token_invalid"),
    ],
)
async def test_bad_tokens_are_refused_clearly(server: Server, token: str, code: str) -> None:
    room_id, _ = await server.create_room()
    err = await _join_error(server, {"type": "join", "room_id": room_id, "token": token})
    assert err["type"] == "error" and err["code"] == code and err["message"]


async def test_unknown_room_and_unsupported_protocol(server: Server) -> None:
    err = await _join_error(server, {"type": "join", "room_id": "nope"})
    assert err["code"] == "not_found"
    room_id, _ = await server.create_room()
    err = await _join_error(server, {"type": "join", "room_id": room_id, "protocol": 2})
    assert err["code"] == "unsupported_version"


async def test_guests_need_guest_mode(make_server: Any) -> None:
    server: Server = await make_server(guest_mode=False)
    room_id, _ = await server.create_room()
    err = await _join_error(server, {"type": "join", "room_id": room_id})
    assert err["code"] == "token_required"
    res = await server.session.post(server.url + "/api/guest", json={})
    assert res.status == 403


async def test_join_timeout_closes_idle_sockets(make_server: Any) -> None:
    server: Server = await make_server(join_timeout=0.3)
    ws = await _raw(server)
    bye = await ws.receive_json(timeout=5)
    assert bye["type"] == "bye" and bye["reason"] == "join_timeout"
    msg = await ws.receive(timeout=5)
    assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 4000


async def test_slow_consumer_is_cut_off_without_slowing_others(make_server: Any) -> None:
    server: Server = await make_server(send_queue_size=8, coalesce_drop_at=4)
    room_id, host_token = await server.create_room()
    host = await server.client(room_id, host_token)
    fast = await server.join(room_id, "fast")
    slow = await server.join(room_id, "slow")
    node = server.node
    conn = node.hub.connection(RoomId(room_id), UserId("slow"))
    assert conn is not None
    from signaling.protocol.schema import Pong

    stuck = asyncio.Event()

    real_send = conn._send_frame

    async def stalled(frame: Any) -> None:
        await stuck.wait()
        await real_send(frame)

    conn._send_frame = stalled  # the transport stops draining, as with a stalled TCP peer
    conn._write_now = lambda frame: False  # unsent bytes wait in the socket: no direct write
    for _ in range(3):
        await host.ok("lock")
        await host.ok("unlock")
    # Ordered events beyond the bound cut the slow client off; the fast one got everything.
    for _ in range(6):
        conn.send(Pong(id=None))
    assert conn.state.value == "closing"
    assert node.counters.slow_consumers == 1
    changes = [m for m in await fast.drain(0.3) if m["type"] == "room_lock_changed"]
    assert len(changes) == 6
    stuck.set()
    code, seen = await slow.closed()
    assert code == 4008
    assert seen[-1]["type"] == "bye" and seen[-1]["reason"] == "slow_consumer"


async def test_counts_are_coalesced_not_sent_per_join(make_server: Any) -> None:
    server: Server = await make_server(stats_interval=0.5)
    room_id, host_token = await server.create_room()
    host = await server.client(room_id, host_token)
    listeners: list[Client] = []
    for i in range(30):
        listeners.append(await server.join(room_id, f"l{i}", binary=i % 2 == 0))
    got = await host.drain(1.2)
    stats = [m for m in got if m["type"] == "room_stats"]
    assert 1 <= len(stats) <= 4  # not 30
    assert stats[-1]["listeners"] == 30
    # A join never costs a message to the other listeners: only coalesced counts reach them.
    first = await listeners[0].drain(0.1)
    assert all(m["type"] == "room_stats" for m in first)


async def test_large_rooms_get_counts_less_often(make_server: Any) -> None:
    server: Server = await make_server(stats_interval=0.1, large_room=5, large_room_stats_every=5)
    room_id, host_token = await server.create_room()
    host = await server.client(room_id, host_token)
    held = [await server.join(room_id, f"l{i}") for i in range(6)]  # 7 connections: large
    await host.drain(0.3)
    # One listener comes and goes every tick: the count changes at every tick ...
    got: list[dict[str, Any]] = []
    for i in range(10):
        extra = await server.join(room_id, f"x{i}")
        await extra.close()
        got += await host.drain(0.1)
    stats = [m for m in got if m["type"] == "room_stats"]
    # ... but a large room hears of it every 5th tick only (~2 over ~10-20 ticks, not 10+).
    assert 1 <= len(stats) <= 5
    assert len(held) == 6


async def test_a_client_gone_during_the_upgrade_is_no_server_error(
    server: Server, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from aiohttp import web
    from aiohttp.client_exceptions import ClientConnectionResetError

    async def gone(self: web.WebSocketResponse, request: web.BaseRequest) -> None:
        raise ClientConnectionResetError("Cannot write to closing transport")

    closed = server.node.counters.closed
    with monkeypatch.context() as patch:
        patch.setattr(web.WebSocketResponse, "prepare", gone)
        with pytest.raises(aiohttp.ClientError):
            await server.session.ws_connect(server.url + "/ws")
    assert server.node.counters.closed > closed  # (the client may retry once)
    assert not [r for r in caplog.records if r.levelno >= 40], "logged as a server error"
    # The next client is served as usual.
    ws = await _raw(server)
    await ws.send_json({"type": "ping", "id": 1})
    assert (await ws.receive_json(timeout=5))["type"] in ("error", "pong")
    await ws.close()
