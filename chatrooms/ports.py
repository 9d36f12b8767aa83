"""What the server must provide to run rooms: a store of room state and an event bus.

The embedded default implements these in memory; the Redis backend implements them
for many nodes. Only the server's backend factory names the concrete classes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from chatrooms.events import Event
from chatrooms.ids import RoomId
from chatrooms.room import Room
from chatrooms.snapshot import RoomInfo

RoomCommand = Callable[[Room], list[Event]]
EventHandler = Callable[[RoomId, Sequence[Event]], None]


class RoomStore(Protocol):
    async def create(self, room: Room) -> None:
        """Store a new room; raises if the id is taken."""

    async def apply(self, room_id: RoomId, command: RoomCommand) -> list[Event]:
        """Run a command on the room atomically, with a version check, and store the result.

        The command may raise a ``ChatroomsError``: then nothing is stored. Raises
        ``RoomNotFound`` when there is no such room.
        """

    def cached(self, room_id: RoomId) -> Room | None:
        """This node's latest view of a room, for routing and snapshots (never mutated)."""

    async def load(self, room_id: RoomId) -> Room | None:
        """The room as stored now (refreshes the cached view)."""

    async def list_rooms(self) -> list[RoomInfo]:
        """Every open room, for the lobby."""

    async def drop(self, room_id: RoomId) -> None:
        """Forget an ended room."""


class EventBus(Protocol):
    async def publish(self, room_id: RoomId, events: Sequence[Event]) -> None:
        """Deliver events, in order, to every node subscribed to the room (this one too)."""

    async def subscribe(self, room_id: RoomId, handler: EventHandler) -> None: ...

    async def unsubscribe(self, room_id: RoomId) -> None: ...

    async def close(self) -> None: ...
