"""`list_audience`: moderators page through the listeners, pulled, never pushed."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster as ClusterClient

from chatrooms.events import LeaveReason
from chatrooms.ids import RoomId, UserId
from chatrooms.ports import InvalidCursor, RoomStore
from chatrooms.room import Room
from signaling.backends.memory import MemoryEventBus, MemoryRoomStore
from signaling.backends.redis_store import RedisRoomStore, audience_key
from tests.redis_server import RedisServer
from tests.signaling.conftest import Client, Server
from tests.signaling.test_redis_nodes import nodes, redis_server  # noqa: F401  (fixtures)

N = 120


async def page(client: Client, **fields: Any) -> dict[str, Any]:
    """Send list_audience with an id; its `audience` (or `error`) reply."""
    request_id = client.next_id
    client.next_id += 1
    await client.send({"type": "list_audience", "id": request_id, **fields})
    async with asyncio.timeout(5):
        while True:
            msg = await client.recv()
            if msg["type"] in ("audience", "error") and msg.get("id") == request_id:
                return msg
            client.inbox.append(msg)


async def walk(client: Client, limit: int = 50) -> tuple[list[str], list[int], set[int]]:
    """Every page: the user ids listed, the page sizes, the totals seen."""
    listed: list[str] = []
    sizes: list[int] = []
    totals: set[int] = set()
    cursor = None
    while True:
        reply = await page(client, cursor=cursor, limit=limit)
        assert reply["type"] == "audience", reply
        assert len(reply["users"]) <= limit
        listed += [u["user_id"] for u in reply["users"]]
        sizes.append(len(reply["users"]))
        totals.add(reply["total"])
        cursor = reply["next_cursor"]
        if cursor is None:
            return listed, sizes, totals
        assert isinstance(cursor, str) and len(cursor) <= 200


@pytest.fixture
async def crowd() -> AsyncIterator[Callable[[list[Server], str, int], Any]]:
    """Join many listeners, over a session of their own with no connection limit (a
    session's default of 100 would hold the 101st WebSocket back)."""
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))

    async def join_many(servers: list[Server], room_id: str, n: int) -> list[Client]:
        mine = [Server(s.url, s.app, session) for s in servers]
        return [await mine[i % len(mine)].join(room_id, f"lis{i:03}") for i in range(n)]

    yield join_many
    await session.close()


JoinMany = Callable[[list[Server], str, int], Any]


async def test_a_host_pages_through_every_listener_once(server: Server, crowd: JoinMany) -> None:
    room_id, host_token = await server.create_room()
    host = await server.client(room_id, host_token)
    spk = await server.join(room_id, "spk")
    await host.ok("invite", user_id="spk")
    await spk.ok("accept_invite")
    await host.drain()
    listeners = await crowd([server], room_id, N)
    # Joins are not pushed: the host hears of them only as a count.
    assert {m["type"] for m in await host.drain(0.5)} <= {"room_stats", "active_speakers"}
    assert not [m for m in await listeners[0].drain(0.1) if m["type"] != "room_stats"]

    listed, sizes, totals = await walk(host, limit=50)
    assert sorted(listed) == sorted(c.user_id for c in listeners)  # each exactly once
    assert sizes == [50, 50, 20]
    assert totals == {N}
    assert "spk" not in listed and "host" not in listed  # the stage is in the snapshot
    reply = await page(host, limit=3)
    assert [u["name"] for u in reply["users"]] == ["Lis000", "Lis001", "Lis002"]
    assert reply["id"] is not None and reply["total"] == N


async def test_default_limit_binary_and_a_moderator(server: Server, crowd: JoinMany) -> None:
    room_id, host_token = await server.create_room()
    host = await server.client(room_id, host_token)
    mod = await server.join(room_id, "mod", binary=True)
    await host.ok("add_moderator", user_id="mod")
    await crowd([server], room_id, 60)
    reply = await page(mod)  # no cursor, no limit: the first 50
    assert reply["type"] == "audience", reply
    assert len(reply["users"]) == 50 and reply["total"] == 60
    rest = await page(mod, cursor=reply["next_cursor"], limit=100)
    assert len(rest["users"]) == 10 and rest["next_cursor"] is None
    # Without an id the reply still comes, with id null.
    await mod.send({"type": "list_audience", "limit": 1})
    assert (await mod.expect("audience"))["id"] is None


async def test_listeners_who_leave_or_come_on_stage_drop_out_of_the_list(
    server: Server, crowd: JoinMany
) -> None:
    room_id, host_token = await server.create_room()
    host = await server.client(room_id, host_token)
    clients = await crowd([server], room_id, 5)
    await host.ok("invite", user_id="lis001")
    await clients[1].ok("accept_invite")
    await clients[2].ok("leave")
    listed, _, totals = await walk(host)
    assert sorted(listed) == ["lis000", "lis003", "lis004"]
    assert totals == {3}
    await host.ok("move_to_audience", user_id="lis001")
    listed, _, _ = await walk(host, limit=2)
    assert sorted(listed) == ["lis000", "lis001", "lis003", "lis004"]


@pytest.mark.parametrize("role", ["listener", "speaker"])
async def test_who_may_not_invite_may_not_list(server: Server, role: str) -> None:
    room_id, host_token = await server.create_room()
    host = await server.client(room_id, host_token)
    me = await server.join(room_id, "me")
    if role == "speaker":
        await host.ok("invite", user_id="me")
        await me.ok("accept_invite")
    reply = await page(me, limit=10)
    assert reply["type"] == "error" and reply["code"] == "forbidden", reply
    # The connection stays open and usable.
    await me.send({"type": "ping", "id": 99})
    assert (await me.expect("pong"))["id"] == 99


@pytest.mark.parametrize(
    "fields",
    [
        {"limit": 0},
        {"limit": 101},
        {"limit": "10"},
        {"limit": 2.5},
        {"limit": True},
        {"cursor": 7},
        {"cursor": "x" * 201},
        {"cursor": "not-a-cursor"},
        {"cursor": "-1"},
        {"cursor": "12:x"},
        {"unknown": 1},
    ],
)
async def test_bad_limit_or_cursor_is_invalid_field(server: Server, fields: dict[str, Any]) -> None:
    room_id, host_token = await server.create_room()
    host = await server.client(room_id, host_token)
    reply = await page(host, **fields)
    assert reply["type"] == "error" and reply["code"] == "invalid_field", reply
    assert reply["id"] is not None


# ---------------------------------------------------------------- many nodes, Redis
async def test_listeners_on_two_nodes_are_all_listed(
    nodes: Callable[..., Any],  # noqa: F811
    crowd: JoinMany,
) -> None:
    a: Server = await nodes("a")
    b: Server = await nodes("b")
    room_id, host_token = await a.create_room()
    host = await a.client(room_id, host_token)
    mod = await b.join(room_id, "mod")
    await host.ok("add_moderator", user_id="mod")
    await host.drain()
    listeners = await crowd([a, b], room_id, N)
    assert {m["type"] for m in await host.drain(0.5)} <= {"room_stats", "active_speakers"}
    expected = sorted(c.user_id for c in listeners)
    for who in (host, mod):
        listed, sizes, totals = await walk(who, limit=50)
        assert sorted(listed) == expected
        assert sizes == [50, 50, 20]
        assert totals == {N}
    spk = listeners[7]
    await mod.ok("invite", user_id=spk.user_id)
    await spk.ok("accept_invite")
    listed, _, totals = await walk(mod, limit=30)
    assert spk.user_id not in listed and len(listed) == N - 1 and totals == {N - 1}
    for who in (listeners[0], spk):
        reply = await page(who, limit=5)
        assert reply["type"] == "error" and reply["code"] == "forbidden", reply
    for bad in ("abc", "1:2", "1:2:3:", "99999999999999999999999"):
        reply = await page(mod, cursor=bad)
        assert reply["type"] == "error" and reply["code"] == "invalid_field", (bad, reply)


# ------------------------------------------------ the stores, walked while people churn
@pytest.fixture
async def redis_store(redis_server: RedisServer) -> AsyncIterator[RedisRoomStore]:  # noqa: F811
    client: aioredis.Redis | ClusterClient
    if redis_server.cluster:
        client = ClusterClient.from_url(redis_server.url)
    else:
        client = aioredis.from_url(redis_server.url)
    yield RedisRoomStore(client)
    await client.aclose()


async def _new_room(store: RoomStore) -> RoomId:
    room = Room.create(
        room_id=RoomId("r1"), host_id=UserId("host"), host_name="Host", title="T", now=0.0
    )
    await store.create(room)
    return room.room_id


async def _walk_store(
    store: RoomStore, room_id: RoomId, limit: int, between: Callable[[], Any] | None = None
) -> list[str]:
    listed: list[str] = []
    cursor: str | None = None
    for _ in range(10_000):
        users, cursor, _total = await store.list_audience(room_id, cursor, limit)
        assert len(users) <= limit
        listed += [u for u, _ in users]
        if cursor is None:
            return listed
        if between is not None:
            await between()
    raise AssertionError("the walk did not end")


@pytest.mark.parametrize("count", [5, 120, 1500])  # listpack, and a real hash table
@pytest.mark.parametrize("limit", [1, 7, 50, 100])
async def test_redis_store_lists_a_still_audience_exactly_once(
    redis_store: RedisRoomStore, count: int, limit: int
) -> None:
    room_id = await _new_room(redis_store)
    users = {f"u{i:05}": f"User {i}" for i in range(count)}
    await redis_store._r.hset(audience_key(room_id), mapping=users)  # type: ignore[misc]
    listed = await _walk_store(redis_store, room_id, limit)
    assert Counter(listed) == Counter(list(users))
    _, _, total = await redis_store.list_audience(room_id, None, limit)
    assert total == count


@pytest.mark.parametrize(("count", "limit"), [(60, 3), (60, 50), (2000, 13), (2000, 100)])
async def test_redis_store_skips_nobody_who_stays_while_others_churn(
    redis_store: RedisRoomStore, count: int, limit: int
) -> None:
    room_id = await _new_room(redis_store)
    key = audience_key(room_id)
    rng = random.Random(count * limit)
    stayers = {f"s{i:05}": "S" for i in range(count)}
    await redis_store._r.hset(key, mapping=stayers)  # type: ignore[misc]
    churners: list[str] = []
    made = 0

    async def between() -> None:
        # Some come, some of those go: the hash grows and shrinks between pages.
        nonlocal made
        come = {f"c{made + i:06}": "C" for i in range(rng.randint(0, 30))}
        made += len(come)
        churners.extend(come)
        rng.shuffle(churners)
        go = [churners.pop() for _ in range(min(len(churners), rng.randint(0, 30)))]
        pipe = redis_store._r.pipeline(transaction=False)
        if come:
            pipe.hset(key, mapping=come)
        if go:
            pipe.hdel(key, *go)
        await pipe.execute()

    listed = await _walk_store(redis_store, room_id, limit, between)
    assert set(stayers) <= set(listed)


async def test_memory_store_skips_nobody_who_stays_while_others_churn() -> None:
    store = MemoryRoomStore(MemoryEventBus())
    room_id = await _new_room(store)
    for i in range(300):
        await store.join(room_id, UserId(f"s{i:03}"), "S", now=0.0, grant=None)
    rng = random.Random(1)
    churn = 0

    async def between() -> None:
        nonlocal churn
        for _ in range(rng.randint(0, 20)):
            churn += 1
            await store.join(room_id, UserId(f"c{churn:05}"), "C", now=0.0, grant=None)
        room = store.cached(room_id)
        assert room is not None
        gone = [u for u in room.members if u.startswith("c") and rng.random() < 0.3]
        for user in gone:
            await store.leave(room_id, user, LeaveReason.LEFT)

    listed = await _walk_store(store, room_id, 17, between)
    stayers = [f"s{i:03}" for i in range(300)]
    assert Counter(u for u in listed if u.startswith("s")) == Counter(stayers)  # exactly once
    with pytest.raises(InvalidCursor):
        await store.list_audience(room_id, "abc", 5)
