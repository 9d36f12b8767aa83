"""The one place that chooses concrete backends."""

from __future__ import annotations

from dataclasses import dataclass

from chatrooms.ports import EventBus, RoomStore
from signaling.backends.memory import MemoryEventBus, MemoryRoomStore
from signaling.config import Settings


@dataclass(frozen=True, slots=True)
class Backends:
    store: RoomStore
    bus: EventBus

    async def close(self) -> None:
        await self.bus.close()


def make_backends(settings: Settings) -> Backends:
    if settings.redis_url:
        raise NotImplementedError("the Redis backend is not available yet; run without --redis")
    return Backends(store=MemoryRoomStore(), bus=MemoryEventBus())
