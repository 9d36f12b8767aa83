"""What the server must provide to run rooms: a store of room state, an event bus, and
presence (which node holds which participant).

The embedded default implements these in memory; the Redis backend implements them
for many nodes. Only the server's backend factory names the concrete classes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from chatrooms.events import Event, LeaveReason
from chatrooms.ids import RoomId, UserId
from chatrooms.permissions import Grant
from chatrooms.room import Room
from chatrooms.snapshot import RoomInfo

RoomCommand = Callable[[Room], list[Event]]
EventHandler = Callable[[RoomId, Sequence[Event]], Awaitable[None] | None]
# Called for each participant of a node that died: remove them from the room.
Evict = Callable[[RoomId, UserId], Awaitable[None]]
# One page of an audience listing: (user id, name) pairs, the next cursor, the total.
AudiencePage = tuple[list[tuple[UserId, str]], str | None, int]


class InvalidCursor(ValueError):
    """A cursor that this store did not hand out (or cannot read)."""


class RoomStore(Protocol):
    async def create(self, room: Room) -> None:
        """Store a new room; raises if the id is taken."""

    async def apply(
        self, room_id: RoomId, command: RoomCommand, involved: Collection[UserId] = ()
    ) -> list[Event]:
        """Run a command on the room atomically, with a version check, store the result,
        and publish its events on the bus in commit order.

        ``involved`` names the users the command reads (actor, target): a store that
        keeps the audience apart loads just those. The command may raise a
        ``ChatroomsError``: then nothing is stored. Raises ``RoomNotFound`` when there
        is no such room, ``Unavailable`` when the store cannot take changes now.
        """

    async def join(
        self, room_id: RoomId, user_id: UserId, name: str, *, now: float, grant: Grant | None
    ) -> list[Event]:
        """``Room.join``; a plain listener's join may take a faster path than ``apply``."""

    async def leave(self, room_id: RoomId, user_id: UserId, reason: LeaveReason) -> list[Event]:
        """``Room.leave``; a plain listener's leave may take a faster path than ``apply``."""

    def cached(self, room_id: RoomId) -> Room | None:
        """This node's latest view of a room, for routing and snapshots (never mutated)."""

    async def load(self, room_id: RoomId) -> Room | None:
        """The room as stored now (refreshes the cached view)."""

    async def refresh_counts(self, room_ids: Iterable[RoomId]) -> None:
        """Bring the cached listener counts of these rooms up to date (all nodes)."""

    async def list_rooms(self) -> list[RoomInfo]:
        """Every open room, for the lobby."""

    async def list_audience(
        self, room_id: RoomId, cursor: str | None, limit: int
    ) -> tuple[list[tuple[UserId, str]], str | None, int]:
        """One page of the room's listeners (role listener): up to ``limit`` (user id,
        name) pairs, the opaque cursor of the next page (None: no more), and how many
        listeners there are now.

        Start with ``cursor=None`` and pass back each page's cursor. A listener present
        for the whole walk is listed (at least) once; one who comes or goes meanwhile may
        or may not be. A page may hold fewer than ``limit`` even when more follow. Raises
        ``InvalidCursor`` for a cursor it cannot read, ``RoomNotFound`` when there is no
        such room, ``Unavailable`` when the store cannot answer now.
        """

    async def drop(self, room_id: RoomId) -> None:
        """Forget an ended room."""


Resync = Callable[[RoomId], Awaitable[None] | None]


class EventBus(Protocol):
    # Told of each room after the bus reconnected: events may have been missed.
    on_resync: Resync | None

    async def subscribe(self, room_id: RoomId, handler: EventHandler) -> None:
        """Deliver the room's events, in commit order, to ``handler`` on this node."""

    async def unsubscribe(self, room_id: RoomId) -> None: ...

    async def close(self) -> None: ...


class Presence(Protocol):
    """Which node holds each participant, so a dead node's participants can be removed."""

    node_id: str

    async def claim(self, room_id: RoomId, user_id: UserId) -> None:
        """This node now holds the participant (a join or a reconnect here)."""

    async def release(self, room_id: RoomId, user_id: UserId) -> bool:
        """This node lets go; False if another node holds the participant now."""

    async def start(self, evict: Evict) -> None:
        """Begin heartbeats and watching for dead nodes."""

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class MediaPacket:
    """One forwarded Opus packet of a speaker, as it crosses between nodes."""

    node_id: str  # the node the speaker is connected to
    user_id: UserId
    sequence_number: int
    timestamp: int
    level: int | None  # RFC 6464 -dBov, None when the packet had none
    payload: bytes
    sent_at: float  # time.time() at the sending node, for latency figures
    # The speaker's RTP stream (its SSRC): a new one after a reconnect starts its own
    # sequence numbers and timestamps, which every node's slots must take up afresh.
    stream: int = 0


MediaHandler = Callable[[RoomId, MediaPacket], None]


class MediaBus(Protocol):
    """Audio between nodes: each packet crosses once per node, never once per listener."""

    def publish(self, room_id: RoomId, packet: MediaPacket) -> None:
        """Queue a packet for the other nodes; never waits."""

    async def subscribe(self, room_id: RoomId, handler: MediaHandler) -> None: ...

    async def unsubscribe(self, room_id: RoomId) -> None: ...

    async def close(self) -> None: ...
