"""The embedded default: room state, events and presence in this process's memory."""

from __future__ import annotations

import heapq
import inspect
from collections.abc import Collection, Iterable, Sequence

from chatrooms import errors
from chatrooms.events import Event, LeaveReason
from chatrooms.ids import RoomId, UserId
from chatrooms.permissions import Grant, Role
from chatrooms.ports import (
    AudiencePage,
    EventHandler,
    Evict,
    InvalidCursor,
    MediaHandler,
    MediaPacket,
    Resync,
    RoomCommand,
)
from chatrooms.room import Room
from chatrooms.snapshot import RoomInfo


class MemoryEventBus:
    """Calls the one local subscriber of a room, in commit order."""

    def __init__(self) -> None:
        self._handlers: dict[RoomId, EventHandler] = {}
        self.on_resync: Resync | None = None  # never needed: nothing is ever missed

    async def deliver(self, room_id: RoomId, events: Sequence[Event]) -> None:
        handler = self._handlers.get(room_id)
        if handler is not None and events:
            result = handler(room_id, events)
            if inspect.isawaitable(result):
                await result

    async def subscribe(self, room_id: RoomId, handler: EventHandler) -> None:
        self._handlers[room_id] = handler

    async def unsubscribe(self, room_id: RoomId) -> None:
        self._handlers.pop(room_id, None)

    async def close(self) -> None:
        self._handlers.clear()


class MemoryRoomStore:
    """Rooms as live objects. A command runs to completion without awaiting, so it is atomic."""

    def __init__(self, bus: MemoryEventBus) -> None:
        self._rooms: dict[RoomId, Room] = {}
        self._bus = bus

    async def create(self, room: Room) -> None:
        if room.room_id in self._rooms:
            raise errors.InvalidState("a room with this id exists")
        self._rooms[room.room_id] = room

    async def apply(
        self, room_id: RoomId, command: RoomCommand, involved: Collection[UserId] = ()
    ) -> list[Event]:
        room = self._rooms.get(room_id)
        if room is None:
            raise errors.RoomNotFound("no such room")
        events = command(room)
        await self._bus.deliver(room_id, events)
        return events

    async def join(
        self, room_id: RoomId, user_id: UserId, name: str, *, now: float, grant: Grant | None
    ) -> list[Event]:
        return await self.apply(room_id, lambda r: r.join(user_id, name, now=now, grant=grant))

    async def leave(self, room_id: RoomId, user_id: UserId, reason: LeaveReason) -> list[Event]:
        return await self.apply(room_id, lambda r: r.leave(user_id, reason=reason))

    def cached(self, room_id: RoomId) -> Room | None:
        return self._rooms.get(room_id)

    async def load(self, room_id: RoomId) -> Room | None:
        return self._rooms.get(room_id)

    async def refresh_counts(self, room_ids: Iterable[RoomId]) -> None:
        return None  # the live objects are the counts

    async def list_rooms(self) -> list[RoomInfo]:
        return [room.info() for room in self._rooms.values() if room.is_open]

    async def list_audience(self, room_id: RoomId, cursor: str | None, limit: int) -> AudiencePage:
        """Listeners in the order they became listeners; the cursor is the last one's
        ``role_since``, so a page is O(n log limit) and nobody is skipped or repeated."""
        room = self._rooms.get(room_id)
        if room is None or not room.is_open:
            raise errors.RoomNotFound("no such room")
        after = 0
        if cursor is not None:
            if not (cursor.isascii() and cursor.isdigit() and len(cursor) <= 18):
                raise InvalidCursor("not a cursor of this listing")
            after = int(cursor)
        page = heapq.nsmallest(
            limit + 1,
            (m for m in room.iter_members() if m.role is Role.LISTENER and m.role_since > after),
            key=lambda m: m.role_since,
        )
        next_cursor = str(page[limit - 1].role_since) if len(page) > limit else None
        return [(m.user_id, m.name) for m in page[:limit]], next_cursor, room.listener_count

    async def drop(self, room_id: RoomId) -> None:
        self._rooms.pop(room_id, None)


class MemoryPresence:
    """One node: everyone is here, and no other node can die."""

    node_id = "embedded"

    async def claim(self, room_id: RoomId, user_id: UserId) -> None:
        return None

    async def release(self, room_id: RoomId, user_id: UserId) -> bool:
        return True

    async def start(self, evict: Evict) -> None:
        return None

    async def close(self) -> None:
        return None


class NoMediaBus:
    """One node: nobody else to send audio to."""

    def publish(self, room_id: RoomId, packet: MediaPacket) -> None:
        return None

    async def subscribe(self, room_id: RoomId, handler: MediaHandler) -> None:
        return None

    async def unsubscribe(self, room_id: RoomId) -> None:
        return None

    async def close(self) -> None:
        return None
