"""The one place that chooses concrete backends."""

from __future__ import annotations

from dataclasses import dataclass, field

from chatrooms.ports import EventBus, MediaBus, Presence, RoomStore
from signaling.backends.memory import (
    MemoryEventBus,
    MemoryPresence,
    MemoryRoomStore,
    NoMediaBus,
)
from signaling.backends.redis_bus import RedisEventBus
from signaling.backends.redis_client import OUTAGE, Client, connect
from signaling.backends.redis_media import RedisMediaBus
from signaling.backends.redis_presence import RedisPresence
from signaling.backends.redis_store import RedisRoomStore
from signaling.config import Settings


class RedisMismatch(RuntimeError):
    """--redis names a cluster node without --redis-cluster."""


@dataclass(frozen=True, slots=True)
class Backends:
    store: RoomStore
    bus: EventBus
    presence: Presence
    media: MediaBus
    redis: Client | None = field(default=None)

    async def check(self, settings: Settings) -> None:
        """Refuse to run a single-Redis node against a cluster (every command would fail)."""
        if self.redis is None or settings.redis_cluster:
            return
        try:
            info = await self.redis.info("cluster")
        except OUTAGE:
            return  # Redis is away: the node starts and reconnects when it is back
        if info.get("cluster_enabled"):
            raise RedisMismatch(
                f"{settings.redis_url} is a node of a Redis Cluster: add --redis-cluster"
            )

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
    client = connect(settings)
    store = RedisRoomStore(client, concurrency=settings.redis_connections)
    return Backends(
        store=store,
        bus=RedisEventBus(client, store),
        presence=RedisPresence(
            client, settings.node_id, heartbeat=settings.node_heartbeat, ttl=settings.node_ttl
        ),
        media=RedisMediaBus(client, settings.node_id),
        redis=client,
    )
