"""Several nodes sharing rooms through a real redis-server, and through a Redis Cluster.

Every test runs twice: against one redis-server (plain pub/sub) and against a cluster
of three (sharded pub/sub, each room on the shard of its hash slot).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from loadtest.nodes import free_port
from tests.redis_cluster import RedisCluster
from tests.redis_server import RedisServer
from tests.signaling.conftest import SECRET, Client, Server


@pytest.fixture(params=["redis", "cluster"])
def redis_server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path) if request.param == "redis" else RedisCluster(tmp_path)
    server.start()
    yield server  # type: ignore[misc]  # a cluster has the same start, kill and url
    server.kill()


@pytest.fixture
async def nodes(make_server: Callable[..., Any], redis_server: RedisServer) -> Callable[..., Any]:
    async def start(name: str, **overrides: Any) -> Server:
        server: Server = await make_server(
            redis_url=redis_server.url,
            redis_cluster=redis_server.cluster,
            node_id=name,
            node_heartbeat=0.2,
            node_ttl=1.0,
            **overrides,
        )
        return server

    return start


async def test_a_command_on_one_node_reaches_clients_of_another_in_order(
    nodes: Callable[..., Any],
) -> None:
    a: Server = await nodes("a")
    b: Server = await nodes("b")
    room_id, host_token = await a.create_room(topics=["tech"])
    # The lobby of every node shows the room.
    rooms = (await (await b.session.get(b.url + "/api/rooms")).json())["rooms"]
    assert [r["room_id"] for r in rooms] == [room_id]
    host = await a.client(room_id, host_token)
    ann = await b.join(room_id, "ann")
    assert ann.joined["snapshot"]["stage"][0]["user_id"] == "host"
    await ann.ok("raise_hand")
    assert (await host.expect("hand_raised"))["user_id"] == "ann"
    await host.ok("invite", user_id="ann")
    await ann.expect("speaker_invited")
    await ann.ok("accept_invite")
    assert (await host.expect("role_changed"))["user_id"] == "ann"
    for _ in range(5):
        await host.ok("lock")
        await host.ok("unlock")
    changes = []
    while len(changes) < 10:
        changes.append(await ann.expect("room_lock_changed"))
    versions = [c["version"] for c in changes]
    assert versions == sorted(versions) and len(set(versions)) == 10
    assert [c["locked"] for c in changes] == [True, False] * 5


async def test_listener_counts_are_summed_across_nodes(nodes: Callable[..., Any]) -> None:
    a: Server = await nodes("a", stats_interval=0.2)
    b: Server = await nodes("b", stats_interval=0.2)
    room_id, host_token = await a.create_room()
    host = await a.client(room_id, host_token)
    held = [await a.join(room_id, f"a{i}") for i in range(3)]
    held += [await b.join(room_id, f"b{i}") for i in range(4)]
    stats = await host.expect("room_stats", lambda m: m["listeners"] == 7)
    assert stats["listeners"] == 7
    info = (await (await b.session.get(f"{b.url}/api/rooms/{room_id}")).json())["room"]
    assert info["listener_count"] == 7
    assert len(held) == 7


async def test_two_nodes_racing_on_one_queue_lose_nothing(nodes: Callable[..., Any]) -> None:
    a: Server = await nodes("a")
    b: Server = await nodes("b")
    room_id, host_token = await a.create_room()
    host = await a.client(room_id, host_token)
    raisers: list[Client] = []
    for i in range(12):
        node = a if i % 2 else b
        raisers.append(await node.join(room_id, f"r{i}", binary=i % 3 == 0))
    await asyncio.gather(*(c.ok("raise_hand") for c in raisers))
    await host.send({"type": "resync"})
    snap = (await host.expect("snapshot"))["snapshot"]
    assert sorted(q["user_id"] for q in snap["queue"]) == sorted(f"r{i}" for i in range(12))
    assert snap["queue_version"] == host.joined["snapshot"]["queue_version"] + 12
    positions = []
    for c in raisers:
        mine = await c.expect("hand_raised", lambda m, c=c: m["user_id"] == c.user_id)
        positions.append(mine["position"])
    assert sorted(positions) == list(range(1, 13))


async def test_moderation_across_nodes(nodes: Callable[..., Any]) -> None:
    a: Server = await nodes("a")
    b: Server = await nodes("b")
    room_id, host_token = await a.create_room()
    host = await a.client(room_id, host_token)
    ann = await b.join(room_id, "ann")
    await host.ok("kick", user_id="ann")
    code, _ = await ann.closed()
    assert code == 4001
    ws = await b.session.ws_connect(b.url + "/ws")
    await ws.send_json({"type": "join", "room_id": room_id, "token": b.token("ann")})
    assert (await ws.receive_json(timeout=5))["code"] == "kicked"
    await ws.close()
    await host.ok("ban", user_id="bob")  # not in the room yet
    ws = await b.session.ws_connect(b.url + "/ws")
    await ws.send_json({"type": "join", "room_id": room_id, "token": b.token("bob")})
    assert (await ws.receive_json(timeout=5))["code"] == "banned"
    await ws.close()
    await host.ok("lock")
    ws = await b.session.ws_connect(b.url + "/ws")
    await ws.send_json({"type": "join", "room_id": room_id, "token": b.token("cat")})
    assert (await ws.receive_json(timeout=5))["code"] == "room_locked"
    await ws.close()


async def test_host_hand_over_and_end_across_nodes(nodes: Callable[..., Any]) -> None:
    a: Server = await nodes("a")
    b: Server = await nodes("b")
    room_id, host_token = await a.create_room()
    host = await a.client(room_id, host_token)
    ann = await b.join(room_id, "ann")
    await host.ok("invite", user_id="ann")
    await ann.ok("accept_invite")
    await host.ok("leave")
    changed = await ann.expect("role_changed", lambda m: m["role"] == "host")
    assert changed["user_id"] == "ann"
    lis = await a.join(room_id, "lis")
    await ann.ok("end_room")
    code, seen = await lis.closed()
    assert code == 4003 and any(m["type"] == "room_ended" for m in seen), (code, seen)
    res = await a.session.get(f"{a.url}/api/rooms/{room_id}")
    assert res.status == 404


@pytest.fixture
async def node_process(redis_server: RedisServer) -> AsyncIterator[Callable[..., Any]]:
    procs: list[asyncio.subprocess.Process] = []

    async def spawn(name: str) -> str:
        port = free_port()
        env = {**os.environ, "CHATROOMS_SECRET": SECRET}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "signaling", "serve", "--port", str(port),
            "--redis", redis_server.url, "--node-id", name,
            *(["--redis-cluster"] if redis_server.cluster else []),
            "--node-ttl", "1", "--node-heartbeat", "0.2", "--log-level", "WARNING",
            env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as session:
            for _ in range(300):
                try:
                    await session.get(url + "/healthz")
                    return url
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
        raise RuntimeError("node did not start")

    yield spawn
    for proc in procs:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_a_dead_nodes_participants_leave_and_reconnected_ones_keep_roles(
    nodes: Callable[..., Any], node_process: Callable[..., Any]
) -> None:
    a: Server = await nodes("a")
    b_url = await node_process("b")
    room_id, host_token = await a.create_room()
    host = await a.client(room_id, host_token)
    b = Server(b_url, a.app, a.session)  # talks to node b; tokens share the secret
    ann = await b.join(room_id, "ann")
    bob = await b.join(room_id, "bob")
    for user, client in (("ann", ann), ("bob", bob)):
        await host.ok("invite", user_id=user)
        await client.ok("accept_invite")
    # Node b dies without a word.
    os.kill(_pid_of(b_url), signal.SIGKILL)
    # Ann's client reconnects to node a at once and keeps her role; bob's does not.
    ann2 = await a.join(room_id, "ann")
    assert ann2.joined["snapshot"]["you"]["role"] == "speaker"
    left = await host.expect("participant_left", timeout=15)
    assert left["user_id"] == "bob" and left["reason"] == "disconnected"
    await host.send({"type": "resync"})
    snap = (await host.expect("snapshot"))["snapshot"]
    assert sorted(m["user_id"] for m in snap["stage"]) == ["ann", "host"]


def _pid_of(url: str) -> int:
    port = url.rsplit(":", 1)[1]
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"signaling" in cmd and port.encode() in cmd:
            return int(pid)
    raise LookupError(url)


async def test_redis_outage_refuses_changes_then_the_room_comes_back(
    nodes: Callable[..., Any], redis_server: RedisServer
) -> None:
    a: Server = await nodes("a")
    room_id, host_token = await a.create_room(title="Survives restarts")
    host = await a.client(room_id, host_token)
    ann = await a.join(room_id, "ann")
    await host.ok("invite", user_id="ann")
    await ann.ok("accept_invite")
    await host.ok("lock")
    redis_server.kill()
    # Local participants stay connected; changes are refused with a clear error.
    err = await host.refused("unlock", "unavailable")
    assert "unavailable" in err["message"]
    await host.send({"type": "ping", "id": 5})
    assert (await host.expect("pong"))["id"] == 5
    redis_server.start()  # same port, same directory: the append-only file
    for _ in range(100):
        reply = await host.call("unlock")
        if reply["type"] == "ack":
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the node did not come back")
    # Nothing committed before the outage was lost.
    await host.send({"type": "resync"})
    snap = (await host.expect("snapshot"))["snapshot"]
    assert snap["info"]["title"] == "Survives restarts"
    assert sorted(m["user_id"] for m in snap["stage"]) == ["ann", "host"]
    assert snap["info"]["locked"] is False
    # Ann hears of it: by the event, or, if her node's subscription came back after the
    # commit, by the snapshot the node sends when it resynchronises.
    async with asyncio.timeout(15):
        while True:
            msg = await ann.recv(15)
            if msg["type"] == "room_lock_changed" and not msg["locked"]:
                break
            if msg["type"] == "snapshot" and not msg["snapshot"]["info"]["locked"]:
                break


async def test_a_speaker_on_one_node_is_heard_on_another(
    nodes: Callable[..., Any], redis_server: RedisServer
) -> None:
    from signaling.backends.redis_media import media_channel
    from tests.signaling.test_redis_cluster import subscribers
    from tests.signaling.test_ws_media import LOOPBACK, connect_media, eventually, heard, talk

    a: Server = await nodes("a", ice_addresses=LOOPBACK)
    b: Server = await nodes("b", ice_addresses=LOOPBACK)
    room_id, host_token = await a.create_room()
    host = await a.client(room_id, host_token)
    ann = await b.join(room_id, "ann")
    host_peer = await connect_media(host, send=True)
    ann_peer = await connect_media(ann)
    try:
        await host.ok("unmute")
        await ann.expect("mute_changed")
        sent = await talk(host_peer, "cross", count=40)
        await eventually(lambda: len(heard(ann_peer, "cross")) >= len(sent) - 2)
        got = heard(ann_peer, "cross")
        assert got == sent[len(sent) - len(got) :]  # byte-identical, in order
        # Each packet crossed once, to node b, not once per listener.
        assert b.node.backends.media.received >= len(got)  # type: ignore[attr-defined]
        if isinstance(redis_server, RedisCluster):  # on the room's shard, sharded pub/sub
            sharded, plain = await subscribers(redis_server, media_channel(room_id))
            assert sharded >= 1 and plain == 0
        # Muted on node a: node b stops forwarding too.
        await host.ok("mute")
        await ann.expect("mute_changed", lambda m: m["muted"])
        before = len(ann_peer.received)
        await talk(host_peer, "muted", count=20)
        await asyncio.sleep(0.3)
        assert not heard(ann_peer, "muted") and len(ann_peer.received) == before
    finally:
        await host_peer.close()
        await ann_peer.close()


async def test_a_speaker_who_reconnects_is_heard_again_on_every_node(
    nodes: Callable[..., Any],
) -> None:
    """A new peer connection starts a new RTP stream (new SSRC, sequence numbers and
    timestamps anywhere): each node's slot must take it up, also where the speaker is
    remote, and even if its numbers are behind the old stream's."""
    from tests.signaling.test_ws_media import LOOPBACK, connect_media, eventually, heard, talk

    a: Server = await nodes("a", ice_addresses=LOOPBACK, reconnect_grace=10.0)
    b: Server = await nodes("b", ice_addresses=LOOPBACK, reconnect_grace=10.0)
    room_id, host_token = await a.create_room()
    host = await a.client(room_id, host_token)
    ann = await b.join(room_id, "ann")  # listens on node b: the host is remote there
    bob = await a.join(room_id, "bob")  # listens on node a, next to the host
    peers = [await connect_media(host, send=True), await connect_media(ann)]
    peers.append(await connect_media(bob))
    try:
        await host.ok("unmute")
        await ann.expect("mute_changed")
        sent = await talk(peers[0], "first", count=30)
        for listener in peers[1:]:
            await eventually(lambda p=listener: len(heard(p, "first")) >= len(sent) - 2)
        last_seq = peers[0]._seq
        # The host's connection drops; the client comes back with a new peer connection
        # whose sequence numbers start behind the old stream's (as random ones may).
        await peers[0].close()
        await host.ws.close()
        host = await a.client(room_id, host_token)
        assert host.joined["snapshot"]["you"]["role"] == "host"
        peers[0] = await connect_media(host, send=True)
        peers[0]._seq = (last_seq - 5000) & 0xFFFF
        sent = await talk(peers[0], "again", count=30)
        for listener in peers[1:]:
            await eventually(lambda p=listener: len(heard(p, "again")) >= len(sent) - 2)
            got = heard(listener, "again")
            assert got == sent[len(sent) - len(got) :]  # in order, nothing duplicated
    finally:
        for peer in peers:
            await peer.close()
