"""Audio between nodes over Redis pub/sub: one message per forwarded packet, per room.

A speaker's node publishes each packet it forwards once on ``cr:{R}:media``; every
node with listeners in the room subscribes and feeds its own forwarder. Publishing
never waits: packets go into a bounded queue that one task drains in pipelines; if
Redis falls behind, the oldest audio is dropped (late audio is worthless anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque

import msgpack
from redis.asyncio.cluster import RedisCluster

from chatrooms.ids import RoomId, UserId
from chatrooms.ports import MediaHandler, MediaPacket
from signaling.backends.redis_channels import Subscriber, open_subscriber
from signaling.backends.redis_client import FAILURE_OR_RECONNECTING, Client

log = logging.getLogger(__name__)

QUEUE_LIMIT = 2000  # ~13 s of 3 speakers at 50 pps


def media_channel(room_id: str) -> str:
    return f"cr:{{{room_id}}}:media"


def pack_packet(p: MediaPacket) -> bytes:
    packed: bytes = msgpack.packb(
        [
            p.node_id,
            p.user_id,
            p.sequence_number,
            p.timestamp,
            p.level,
            p.payload,
            p.sent_at,
            p.stream,
        ],
        use_bin_type=True,
    )
    return packed


def unpack_packet(data: bytes) -> MediaPacket:
    fields = msgpack.unpackb(data, raw=False)
    node, user, seq, ts, level, payload, sent_at = fields[:7]
    stream = int(fields[7]) if len(fields) > 7 else 0  # a node of the previous version
    return MediaPacket(
        node, UserId(user), int(seq), int(ts), level, bytes(payload), sent_at, stream
    )


class RedisMediaBus:
    def __init__(self, client: Client, node_id: str) -> None:
        self._r = client
        self._sharded = isinstance(client, RedisCluster)
        self.node_id = node_id
        self._out: deque[tuple[str, bytes]] = deque(maxlen=QUEUE_LIMIT)
        self._wake = asyncio.Event()
        self._handlers: dict[RoomId, MediaHandler] = {}
        self._sub: Subscriber | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.published = 0
        self.received = 0

    def publish(self, room_id: RoomId, packet: MediaPacket) -> None:
        self._out.append((media_channel(room_id), pack_packet(packet)))
        self._wake.set()
        if not self._tasks:
            loop = asyncio.get_running_loop()
            self._tasks = [loop.create_task(self._send_loop()), loop.create_task(self._read_loop())]

    async def _send_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._out:
                batch = [self._out.popleft() for _ in range(min(len(self._out), 256))]
                try:
                    pipe = self._r.pipeline(transaction=False)
                    for channel, data in batch:
                        if self._sharded:
                            pipe.spublish(channel, data)
                        else:
                            pipe.publish(channel, data)
                    await pipe.execute()
                    self.published += len(batch)
                except FAILURE_OR_RECONNECTING:
                    await asyncio.sleep(0.5)  # Redis is away: this audio is lost

    async def subscribe(self, room_id: RoomId, handler: MediaHandler) -> None:
        fresh = room_id not in self._handlers
        self._handlers[room_id] = handler
        if not self._tasks:
            loop = asyncio.get_running_loop()
            self._tasks = [loop.create_task(self._send_loop()), loop.create_task(self._read_loop())]
        elif fresh and self._sub is not None:
            with contextlib.suppress(*FAILURE_OR_RECONNECTING):
                await self._sub.add([media_channel(room_id)])

    async def unsubscribe(self, room_id: RoomId) -> None:
        if self._handlers.pop(room_id, None) is not None and self._sub is not None:
            with contextlib.suppress(*FAILURE_OR_RECONNECTING):
                await self._sub.remove([media_channel(room_id)])

    async def _read_loop(self) -> None:
        while True:
            sub: Subscriber | None = None
            try:
                channels = [media_channel(r) for r in self._handlers]
                sub = await open_subscriber(self._r, "cr:media:keepalive", channels)
                self._sub = sub
                while True:
                    message = await sub.get(wait=1.0)
                    if message is not None:
                        self._deliver(*message)
            except asyncio.CancelledError:
                if sub is not None:
                    await sub.aclose()
                raise
            except FAILURE_OR_RECONNECTING:
                self._sub = None
                if sub is not None:
                    await sub.aclose()
                await asyncio.sleep(0.5)

    def _deliver(self, channel: bytes, data: bytes) -> None:
        room_id = RoomId(channel.decode().split("{", 1)[1].split("}", 1)[0])
        handler = self._handlers.get(room_id)
        if handler is None:
            return
        try:
            packet = unpack_packet(data)
        except (ValueError, TypeError, msgpack.UnpackException):
            return
        if packet.node_id == self.node_id:
            return  # our own: already forwarded here
        self.received += 1
        handler(room_id, packet)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        self._handlers.clear()
