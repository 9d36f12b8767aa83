"""The one place that chooses concrete backends."""

from __future__ import annotations

from dataclasses import dataclass, field

import redis.asyncio as aioredis

from chatrooms.ports import EventBus, MediaBus, Presence, RoomStore
from signaling.backends.memory import (
    MemoryEventBus,
    MemoryPresence,
    MemoryRoomStore,
    NoMediaBus,
)
from signaling.backends.redis_bus import RedisEventBus
from signaling.backends.redis_media import RedisMediaBus
from signaling.backends.redis_presence import RedisPresence
from signaling.backends.redis_store import RedisRoomStore
from signaling.config import Settings


@dataclass(frozen=True, slots=True)
class Backends:
    store: RoomStore
    bus: EventBus
    presence: Presence
    media: MediaBus
    redis: aioredis.Redis | None = field(default=None)

    async def close(self) -> None:
        await self.presence.close()
        await self.media.close()
        await self.bus.close()
        if self.redis is not None:
            await self.redis.aclose()


def make_backends(settings: Settings) -> Backends:
    if not settings.redis_url:
        bus = MemoryEventBus()
        return Backends(
            store=MemoryRoomStore(bus), bus=bus, presence=MemoryPresence(), media=NoMediaBus()
        )
    # A bounded pool that makes commands wait for a connection: a join storm must queue
    # on a few dozen Redis connections, not open thousands (or fail for want of one).
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.redis_connections,
        timeout=settings.redis_timeout * 5,
        socket_timeout=settings.redis_timeout,
        socket_connect_timeout=settings.redis_timeout,
        health_check_interval=10,
    )
    client = aioredis.Redis(connection_pool=pool)
    store = RedisRoomStore(client)
    return Backends(
        store=store,
        bus=RedisEventBus(client, store),
        presence=RedisPresence(
            client, settings.node_id, heartbeat=settings.node_heartbeat, ttl=settings.node_ttl
        ),
        media=RedisMediaBus(client, settings.node_id),
        redis=client,
    )
