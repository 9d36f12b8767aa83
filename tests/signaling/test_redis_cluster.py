"""What only a Redis Cluster shows: sharded channels, rooms spread over shards, and a
node that refuses to run a single-Redis client against a cluster."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster as ClusterClient

from signaling.backends.factory import RedisMismatch
from signaling.backends.redis_store import events_channel
from tests.redis_cluster import RedisCluster
from tests.signaling.conftest import SECRET, Server


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[RedisCluster]:
    c = RedisCluster(tmp_path)
    c.start()
    yield c
    c.kill()


async def subscribers(cluster: RedisCluster, channel: str) -> tuple[int, int]:
    """(sharded, plain) subscribers of ``channel`` on the primary that owns its slot."""
    probe = ClusterClient.from_url(cluster.url)
    try:
        await probe.initialize()
        node = probe.get_node_from_key(channel)
        assert node is not None
        direct = aioredis.Redis(host=node.host, port=int(node.port))
        try:
            sharded = await direct.execute_command("PUBSUB", "SHARDNUMSUB", channel)
            plain = await direct.execute_command("PUBSUB", "NUMSUB", channel)
        finally:
            await direct.aclose()
        return int(sharded[1]), int(plain[1])
    finally:
        await probe.aclose()


async def test_rooms_on_every_shard_use_sharded_channels(
    make_server: Callable[..., Any], cluster: RedisCluster
) -> None:
    opts: dict[str, Any] = {"redis_url": cluster.url, "redis_cluster": True}
    a: Server = await make_server(node_id="a", **opts)
    b: Server = await make_server(node_id="b", **opts)
    probe = ClusterClient.from_url(cluster.url)
    await probe.initialize()
    rooms: list[tuple[str, str]] = []
    owners: set[str] = set()
    try:
        # Rooms until every primary owns one (room ids are random: slots spread).
        while len(owners) < len(cluster.nodes):
            room_id, host_token = await a.create_room(title=f"Room {len(rooms)}")
            node = probe.get_node_from_key(events_channel(room_id))
            assert node is not None
            owners.add(node.name)
            rooms.append((room_id, host_token))
            assert len(rooms) < 60
    finally:
        await probe.aclose()
    for room_id, host_token in rooms:
        host = await a.client(room_id, host_token)
        ann = await b.join(room_id, "ann")
        await ann.ok("raise_hand")
        assert (await host.expect("hand_raised"))["user_id"] == "ann"
        # Both nodes listen on the room's shard, with SSUBSCRIBE, not SUBSCRIBE.
        assert await subscribers(cluster, events_channel(room_id)) == (2, 0)


async def test_a_node_without_the_cluster_flag_refuses_to_start(
    make_server: Callable[..., Any], cluster: RedisCluster
) -> None:
    with pytest.raises(RedisMismatch, match="--redis-cluster"):
        await make_server(redis_url=cluster.url)
    # From the command line: a clear error and exit status 2, not a traceback.
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "signaling", "serve", "--port", "0", "--redis", cluster.url,
        env={**os.environ, "CHATROOMS_SECRET": SECRET},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert b"add --redis-cluster" in err and b"Traceback" not in err


async def test_buses_subscribe_before_the_client_knows_the_slots(cluster: RedisCluster) -> None:
    """A node's first Redis call may be a subscription: it must load the slot map."""
    from chatrooms.events import Event
    from chatrooms.ids import RoomId, UserId
    from chatrooms.ports import MediaPacket
    from chatrooms.room import Room
    from signaling.backends.redis_bus import RedisEventBus
    from signaling.backends.redis_media import RedisMediaBus
    from signaling.backends.redis_store import RedisRoomStore

    clients = [ClusterClient.from_url(cluster.url) for _ in range(4)]
    media_in, media_out = RedisMediaBus(clients[0], "b"), RedisMediaBus(clients[1], "a")
    store_b = RedisRoomStore(clients[2])
    events_in, store_a = RedisEventBus(clients[2], store_b), RedisRoomStore(clients[3])
    packets: list[MediaPacket] = []
    events: list[Event] = []
    room_id = RoomId("fresh")
    try:
        await media_in.subscribe(room_id, lambda r, p: packets.append(p))
        await events_in.subscribe(room_id, lambda r, e: events.extend(e))
        room = Room.create(
            room_id=room_id, host_id=UserId("host"), host_name="Host", title="t", now=0
        )
        await store_a.create(room)
        for attempt in range(100):  # the readers subscribe in the background
            packet = MediaPacket("a", UserId("host"), attempt, 0, 30, b"opus", 0.0)
            media_out.publish(room_id, packet)
            await store_a.apply(room_id, lambda r: r.set_locked(UserId("host"), not r.locked))
            await asyncio.sleep(0.05)
            if packets and events:
                break
        assert packets and packets[-1].payload == b"opus"
        assert events and events[-1].room_id == room_id
    finally:
        await media_in.close()
        await media_out.close()
        await events_in.close()
        for client in clients:
            await client.aclose()
