"""The embedded default: room state and events in this process's memory."""

from __future__ import annotations

from collections.abc import Sequence

from chatrooms import errors
from chatrooms.events import Event
from chatrooms.ids import RoomId
from chatrooms.ports import EventHandler, RoomCommand
from chatrooms.room import Room
from chatrooms.snapshot import RoomInfo


class MemoryRoomStore:
    """Rooms as live objects. A command runs to completion without awaiting, so it is atomic."""

    def __init__(self) -> None:
        self._rooms: dict[RoomId, Room] = {}

    async def create(self, room: Room) -> None:
        if room.room_id in self._rooms:
            raise errors.InvalidState("a room with this id exists")
        self._rooms[room.room_id] = room

    async def apply(self, room_id: RoomId, command: RoomCommand) -> list[Event]:
        room = self._rooms.get(room_id)
        if room is None:
            raise errors.RoomNotFound("no such room")
        return command(room)

    def cached(self, room_id: RoomId) -> Room | None:
        return self._rooms.get(room_id)

    async def load(self, room_id: RoomId) -> Room | None:
        return self._rooms.get(room_id)

    async def list_rooms(self) -> list[RoomInfo]:
        return [room.info() for room in self._rooms.values() if room.is_open]

    async def drop(self, room_id: RoomId) -> None:
        self._rooms.pop(room_id, None)

    def __len__(self) -> int:
        return len(self._rooms)


class MemoryEventBus:
    """Calls the one local subscriber of a room synchronously, in publish order."""

    def __init__(self) -> None:
        self._handlers: dict[RoomId, EventHandler] = {}

    async def publish(self, room_id: RoomId, events: Sequence[Event]) -> None:
        handler = self._handlers.get(room_id)
        if handler is not None and events:
            handler(room_id, events)

    async def subscribe(self, room_id: RoomId, handler: EventHandler) -> None:
        self._handlers[room_id] = handler

    async def unsubscribe(self, room_id: RoomId) -> None:
        self._handlers.pop(room_id, None)

    async def close(self) -> None:
        self._handlers.clear()
