"""Subscriptions to Redis channels: plain pub/sub, or sharded on a Redis Cluster.

On one Redis, channels use PUBLISH/SUBSCRIBE. On a Redis Cluster they use sharded
pub/sub (SPUBLISH/SSUBSCRIBE): a room's channels hash to the slot of the room's keys,
so a message travels to one shard only instead of over the whole cluster bus. There,
this node holds one connection per primary that owns a channel it listens to, and one
task per connection reads it into one queue, so a quiet shard never delays a busy
one (redis-py's ClusterPubSub polls the shards in turn, each with the full timeout).

A broken connection, or a slot that moved (the server then unsubscribes us), ends the
subscriber: ``get`` raises, and the owner opens a new one and resynchronises, as after
any Redis outage.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Sequence
from typing import Protocol

import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.cluster import ClusterNode, RedisCluster

from signaling.backends.redis_client import Client

Message = tuple[bytes, bytes]  # channel, data


class Subscriber(Protocol):
    async def add(self, channels: Sequence[str]) -> None: ...

    async def remove(self, channels: Sequence[str]) -> None: ...

    async def get(self, wait: float) -> Message | None:
        """The next message, or None after ``wait`` seconds; raises if the link broke."""
        ...

    async def aclose(self) -> None: ...


async def open_subscriber(client: Client, keepalive: str, channels: Sequence[str]) -> Subscriber:
    """Subscribed to ``channels``; raises a Redis error if Redis is away."""
    subscriber: Subscriber
    if isinstance(client, RedisCluster):
        subscriber = ShardedSubscriber(client)
    else:
        subscriber = PlainSubscriber(client, keepalive)
    try:
        await subscriber.add(channels)
    except BaseException:
        await subscriber.aclose()
        raise
    return subscriber


class PlainSubscriber:
    def __init__(self, client: aioredis.Redis, keepalive: str) -> None:
        self._pubsub = client.pubsub(ignore_subscribe_messages=True)
        self._keepalive = keepalive
        self._opened = False

    async def add(self, channels: Sequence[str]) -> None:
        if not self._opened:
            # A pubsub connection needs one subscription before it can be read.
            await self._pubsub.subscribe(self._keepalive, *channels)
            self._opened = True
        elif channels:
            await self._pubsub.subscribe(*channels)

    async def remove(self, channels: Sequence[str]) -> None:
        if channels:
            await self._pubsub.unsubscribe(*channels)

    async def get(self, wait: float) -> Message | None:
        message = await self._pubsub.get_message(timeout=wait)
        if message is None:
            return None
        channel, data = message.get("channel"), message.get("data")
        if isinstance(channel, bytes) and isinstance(data, bytes):
            return channel, data
        return None

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]


class SlotMoved(redis.exceptions.ConnectionError):
    """The cluster moved a slot we listen to: subscribe again where it lives now."""


class ShardedSubscriber:
    def __init__(self, cluster: RedisCluster) -> None:
        self._cluster = cluster
        self._shards: dict[str, tuple[aioredis.Redis, aioredis.client.PubSub]] = {}
        self._readers: list[asyncio.Task[None]] = []
        self._node_of: dict[str, str] = {}  # channel -> node name, while wanted
        self._queue: asyncio.Queue[Message | BaseException] = asyncio.Queue()

    async def _node(self, channel: str) -> ClusterNode:
        await self._cluster.initialize()  # loads the slot map once; then returns at once
        node = self._cluster.get_node_from_key(channel)
        if node is None:
            raise redis.exceptions.ClusterDownError(f"no node serves {channel}")
        return node

    async def _subscribe(self, node: ClusterNode, channels: list[str]) -> None:
        shard = self._shards.get(node.name)
        fresh = shard is None
        if shard is None:
            kwargs = self._cluster.get_connection_kwargs()
            client = aioredis.Redis(
                host=node.host,
                port=int(node.port),
                username=kwargs.get("username"),
                password=kwargs.get("password"),
                socket_connect_timeout=kwargs.get("socket_connect_timeout"),
                socket_timeout=kwargs.get("socket_timeout"),
            )
            shard = client, client.pubsub()
            self._shards[node.name] = shard
        try:
            await shard[1].ssubscribe(*channels)
        except Exception as exc:
            self._queue.put_nowait(exc)  # the owner's reading loop starts over
            raise
        if fresh:  # read only once subscribed: a pubsub has no connection before
            reader = asyncio.get_running_loop().create_task(self._read(shard[1]))
            self._readers.append(reader)

    async def add(self, channels: Sequence[str]) -> None:
        # One SSUBSCRIBE per slot: a command naming channels of two slots is refused.
        by_slot: dict[int, list[str]] = defaultdict(list)
        for channel in channels:
            by_slot[self._cluster.keyslot(channel)].append(channel)
        for group in by_slot.values():
            node = await self._node(group[0])
            for channel in group:
                self._node_of[channel] = node.name
            await self._subscribe(node, group)

    async def remove(self, channels: Sequence[str]) -> None:
        by_node: dict[str, list[str]] = defaultdict(list)
        for channel in channels:
            name = self._node_of.pop(channel, None)
            if name is not None:
                by_node[name].append(channel)
        for name, group in by_node.items():
            _, pubsub = self._shards[name]
            for channel in group:
                await pubsub.sunsubscribe(channel)

    async def _read(self, pubsub: aioredis.client.PubSub) -> None:
        try:
            while True:
                message = await pubsub.get_message(timeout=1.0)
                if message is None:
                    continue
                kind, channel = message.get("type"), message.get("channel")
                data = message.get("data")
                if kind in ("smessage", b"smessage"):
                    if isinstance(channel, bytes) and isinstance(data, bytes):
                        self._queue.put_nowait((channel, data))
                elif (
                    kind in ("sunsubscribe", b"sunsubscribe")
                    and isinstance(channel, bytes)
                    and channel.decode() in self._node_of
                ):
                    raise SlotMoved(f"slot of {channel.decode()} moved")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._queue.put_nowait(exc)

    async def get(self, wait: float) -> Message | None:
        try:
            item = self._queue.get_nowait()
        except asyncio.QueueEmpty:
            try:
                item = await asyncio.wait_for(self._queue.get(), wait)
            except TimeoutError:
                return None
        if isinstance(item, BaseException):
            raise item
        return item

    async def aclose(self) -> None:
        for reader in self._readers:
            reader.cancel()
        for reader in self._readers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
        for client, pubsub in self._shards.values():
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            with contextlib.suppress(Exception):
                await client.aclose()
        self._readers.clear()
        self._shards.clear()
