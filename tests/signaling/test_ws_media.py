"""Audio through the whole server: signaling over WebSockets, media with real aiortc
peers on 127.0.0.1. The room, not the client, decides who is heard."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from signaling.sfu.client import AudioPeer
from tests.signaling.conftest import Client, Server

LOOPBACK = ("127.0.0.1",)


async def eventually(predicate: Callable[[], bool], limit: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not predicate():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def connect_media(client: Client, *, send: bool = False) -> AudioPeer:
    slots = client.joined["media"]["audio_slots"]
    peer = AudioPeer(slots=slots, gather_addresses=LOOPBACK)
    await client.send({"type": "rtc_offer", "id": 500, "sdp": await peer.offer()})
    answer = await client.expect("rtc_answer", timeout=20)
    assert answer["id"] == 500
    await peer.accept(answer["sdp"])
    await peer.wait_connected()
    if send:
        await add_send_track(client, peer)
    return peer


async def add_send_track(client: Client, peer: AudioPeer) -> None:
    """Promotion on the peer connection the client already has: a re-offer."""
    await client.send({"type": "rtc_offer", "id": 501, "sdp": await peer.offer_send()})
    await peer.accept((await client.expect("rtc_answer", timeout=20))["sdp"])
    await asyncio.sleep(0.1)  # the server hooks its new receiver once aiortc connects it


async def talk(peer: AudioPeer, tag: str, count: int = 20, level: int = 20) -> list[bytes]:
    sent = []
    for i in range(count):
        payload = f"{tag}:{i}".encode()
        peer.send_audio(payload, level)
        sent.append(payload)
        await asyncio.sleep(0.005)
    return sent


def heard(peer: AudioPeer, tag: str) -> list[bytes]:
    return [p.payload for p in peer.received if p.payload.startswith(f"{tag}:".encode())]


async def _room_with_media(server: Server) -> tuple[str, Client, AudioPeer, Client, AudioPeer]:
    room_id, host_token = await server.create_room()
    host = await server.client(room_id, host_token)
    ann = await server.join(room_id, "ann")
    host_peer = await connect_media(host, send=True)
    ann_peer = await connect_media(ann)
    await host.ok("unmute")
    return room_id, host, host_peer, ann, ann_peer


async def test_joined_tells_how_to_set_up_media(server: Server) -> None:
    room_id, host_token = await server.create_room()
    host = await server.client(room_id, host_token)
    media: dict[str, Any] = host.joined["media"]
    assert media["audio_slots"] == 3 and media["ice_servers"] == []


async def test_host_is_heard_byte_identical_and_mute_stops_it(make_server: Any) -> None:
    server: Server = await make_server(ice_addresses=LOOPBACK)
    _, host, host_peer, ann, ann_peer = await _room_with_media(server)
    try:
        sent = await talk(host_peer, "host")
        await eventually(lambda: len(heard(ann_peer, "host")) >= len(sent))
        assert heard(ann_peer, "host") == sent  # same payloads, same order
        assert not heard(host_peer, "host")  # nobody hears themselves
        await talk(host_peer, "more", count=40)
        speaking = await ann.expect("active_speakers", lambda m: "host" in m["user_ids"])
        assert speaking["user_ids"] == ["host"]
        await host.ok("mute")
        await ann.expect("mute_changed")
        before = len(ann_peer.received)
        await talk(host_peer, "muted")
        await asyncio.sleep(0.3)
        assert not heard(ann_peer, "muted") and len(ann_peer.received) == before
    finally:
        await host_peer.close()
        await ann_peer.close()


async def test_promotion_and_demotion_without_reconnecting(make_server: Any) -> None:
    server: Server = await make_server(ice_addresses=LOOPBACK)
    _, host, host_peer, ann, ann_peer = await _room_with_media(server)
    try:
        # A listener who sends audio is not heard.
        await add_send_track(ann, ann_peer)
        await talk(ann_peer, "sneaky")
        await asyncio.sleep(0.3)
        assert not heard(host_peer, "sneaky")
        pc = ann_peer.pc
        # Invited, accepted, unmuted: heard, on the same peer connection.
        await host.ok("invite", user_id="ann")
        await ann.ok("accept_invite")
        await ann.ok("unmute")
        sent = await talk(ann_peer, "ann")
        await eventually(lambda: len(heard(host_peer, "ann")) >= len(sent) - 2)
        assert ann_peer.pc is pc and pc.connectionState == "connected"
        # Moved back to the audience: dropped at once, whatever the browser sends.
        await host.ok("move_to_audience", user_id="ann")
        await ann.expect("role_changed", lambda m: m["role"] == "listener")
        await talk(ann_peer, "demoted")
        await asyncio.sleep(0.3)
        assert not heard(host_peer, "demoted")
    finally:
        await host_peer.close()
        await ann_peer.close()


async def test_kicked_speaker_is_not_heard(make_server: Any) -> None:
    server: Server = await make_server(ice_addresses=LOOPBACK)
    room_id, host, host_peer, ann, ann_peer = await _room_with_media(server)
    try:
        await host.ok("invite", user_id="ann")
        await ann.ok("accept_invite")
        await add_send_track(ann, ann_peer)
        await ann.ok("unmute")
        sent = await talk(ann_peer, "before")
        await eventually(lambda: len(heard(host_peer, "before")) >= len(sent) - 2)
        await host.ok("kick", user_id="ann")
        # The server drops the kicked user's peer connection along with the signaling.
        sfu = server.node.media.sfu
        await eventually(lambda: sfu.session(room_id, "ann") is None)
        with contextlib.suppress(OSError, ConnectionError):  # its socket may be gone
            await talk(ann_peer, "after")
        await asyncio.sleep(0.3)
        assert not heard(host_peer, "after")
    finally:
        await host_peer.close()
        await ann_peer.close()


async def test_bad_sdp_is_a_typed_error_and_the_connection_survives(make_server: Any) -> None:
    server: Server = await make_server(ice_addresses=LOOPBACK)
    room_id, host_token = await server.create_room()
    host = await server.client(room_id, host_token)
    err = await host.refused("rtc_offer", "invalid_sdp", sdp="v=0\r\nthis is not sdp")
    assert err["message"]
    await host.refused("rtc_candidate", "invalid_candidate", candidate="candidate:1 1 udp")
    peer = await connect_media(host)  # the same connection still negotiates
    try:
        assert peer.pc.connectionState == "connected"
    finally:
        await peer.close()


async def test_leaving_closes_the_session(make_server: Any) -> None:
    server: Server = await make_server(ice_addresses=LOOPBACK)
    room_id, _host, host_peer, ann, ann_peer = await _room_with_media(server)
    sfu = server.node.media.sfu
    assert sfu.session(room_id, "ann") is not None
    capacity = server.node.endpoint.capacity
    assert capacity.used() == 4  # what holds descriptors: two WebSockets, two sessions
    await ann.ok("leave")
    await ann.closed()
    await eventually(lambda: sfu.session(room_id, "ann") is None)
    await eventually(lambda: capacity.used() == 2)
    await host_peer.close()
    await ann_peer.close()


async def test_large_rooms_get_active_speakers_at_most_once_a_second(make_server: Any) -> None:
    from chatrooms.ids import RoomId
    from signaling.sfu import ActiveSpeakers

    server: Server = await make_server(large_room=3)
    room_id, host_token = await server.create_room()
    host = await server.client(room_id, host_token)
    held = [await server.join(room_id, u) for u in ("ann", "bob")]  # 3 connections: large
    media = server.node.media
    media._watch_speakers(RoomId(room_id))
    tell = media.sfu._rooms[room_id].subscribers[0]  # what the SFU calls on a change
    for who in (("host",), ("ann",), ("host", "ann"), ("bob",), ("ann", "bob")):
        tell(ActiveSpeakers(room_id, who, (30.0,) * len(who)))
    got = [m for m in await host.drain(1.5) if m["type"] == "active_speakers"]
    # The first at once, then the latest a second later: not five frames to everyone.
    assert [m["user_ids"] for m in got] == [["host"], ["ann", "bob"]]
    assert len(held) == 2
