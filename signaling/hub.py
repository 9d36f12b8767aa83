"""This node's connections, by room, and the fan-out of room events to them.

Events arrive from the bus already ordered. Each is encoded at most once per wire
format and the same bytes are queued on every connection that may see it. Listener
counts are not sent per join: rooms are marked dirty and a loop publishes their
counts at most once per ``stats_interval``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator, Sequence

from chatrooms.errors import ChatroomsError
from chatrooms.events import (
    Event,
    ParticipantBanned,
    ParticipantKicked,
    RoleChanged,
    RoomEndedEvent,
    Visibility,
)
from chatrooms.ids import RoomId, UserId
from chatrooms.ports import RoomStore
from chatrooms.room import Room
from signaling.connection import Connection
from signaling.protocol.codec import EncodedOnce
from signaling.protocol.schema import ByeReason, RoomStats, Snapshot


def queue_audience(room: Room, event: Event) -> Iterator[UserId]:
    """Who receives a QUEUE event: the stage, the queue, invitees, and its subject."""
    yield from (m.user_id for m in room.stage)
    yield from room.queue
    yield from (u for u in room.invites if u not in room.queue)
    subject: UserId | None = getattr(event, "user_id", None)
    if subject is not None and not room.sees_queue(subject):
        yield subject


# Told of every batch of room events this node receives, after the fan-out.
EventObserver = Callable[[RoomId, Room | None, Sequence[Event]], None]


class Hub:
    def __init__(
        self, store: RoomStore, *, large_room: int = 2000, large_room_every: int = 5
    ) -> None:
        self._store = store
        # Rooms with this many connections here get counts every N-th tick only: a count
        # per second to 15,000 listeners is 15,000 frames a second for little news.
        self._large_room = large_room
        self._large_room_every = large_room_every
        self._ticks = 0
        self.observers: list[EventObserver] = []
        self._rooms: dict[RoomId, dict[UserId, Connection]] = {}
        self._dirty: set[RoomId] = set()
        self._stats_sent: dict[RoomId, tuple[int, int]] = {}

    # ---------------------------------------------------------- membership
    def attach(self, conn: Connection) -> Connection | None:
        """Register a connection; returns the one it replaces (same user, same room)."""
        conns = self._rooms.setdefault(conn.room_id, {})
        old = conns.get(conn.user_id)
        conns[conn.user_id] = conn
        return old if old is not conn else None

    def detach(self, conn: Connection) -> bool:
        """Forget a connection; False if it had already been replaced."""
        conns = self._rooms.get(conn.room_id)
        if conns is None or conns.get(conn.user_id) is not conn:
            return False
        del conns[conn.user_id]
        if not conns:
            del self._rooms[conn.room_id]
            self._stats_sent.pop(conn.room_id, None)
            self._dirty.discard(conn.room_id)
        return True

    def connection(self, room_id: RoomId, user_id: UserId) -> Connection | None:
        return self._rooms.get(room_id, {}).get(user_id)

    def connections(self, room_id: RoomId) -> list[Connection]:
        return list(self._rooms.get(room_id, {}).values())

    def connection_count_in(self, room_id: RoomId) -> int:
        return len(self._rooms.get(room_id, ()))

    def room_ids(self) -> list[RoomId]:
        """Rooms with at least one connection on this node."""
        return list(self._rooms)

    def has_room(self, room_id: RoomId) -> bool:
        return room_id in self._rooms

    def all_connections(self) -> Iterator[Connection]:
        for conns in list(self._rooms.values()):
            yield from list(conns.values())

    @property
    def connection_count(self) -> int:
        return sum(len(c) for c in self._rooms.values())

    # ------------------------------------------------------------ fan-out
    def on_events(self, room_id: RoomId, events: Sequence[Event]) -> None:
        conns = self._rooms.get(room_id)
        self._dirty.add(room_id)
        room = self._store.cached(room_id)
        if conns:
            self._fan_out(room_id, room, conns, events)
        for observe in self.observers:
            observe(room_id, room, events)

    def _fan_out(
        self,
        room_id: RoomId,
        room: Room | None,
        conns: dict[UserId, Connection],
        events: Sequence[Event],
    ) -> None:
        for event in events:
            if event.visibility is Visibility.AUDIENCE:
                continue
            encoded = EncodedOnce(event)
            if event.visibility is Visibility.PUBLIC:
                for conn in conns.values():
                    conn.send_event(event, encoded)
            elif room is not None:
                for user_id in set(queue_audience(room, event)):
                    target = conns.get(user_id)
                    if target is not None:
                        target.send_event(event, encoded)
            self._after(room_id, room, conns, event)

    def _after(
        self, room_id: RoomId, room: Room | None, conns: dict[UserId, Connection], event: Event
    ) -> None:
        """What an event does to connections beyond informing them."""
        if isinstance(event, ParticipantKicked | ParticipantBanned):
            conn = conns.get(event.user_id)
            if conn is not None:
                kicked = isinstance(event, ParticipantKicked)
                conn.close(
                    ByeReason.KICKED if kicked else ByeReason.BANNED,
                    "a moderator removed you from the room"
                    if kicked
                    else "a moderator banned you from this room",
                )
        elif isinstance(event, RoomEndedEvent):
            for conn in list(conns.values()):
                conn.close(ByeReason.ROOM_ENDED, "the room has ended")
        elif isinstance(event, RoleChanged) and event.role.on_stage != event.previous.on_stage:
            # Joining or leaving the stage changes what you may see (the queue): resend all.
            conn = conns.get(event.user_id)
            if conn is not None and room is not None:
                snap = room.snapshot_for(event.user_id)
                conn.send(Snapshot(snapshot=snap))

    # -------------------------------------------------------------- counts
    def publish_stats(self) -> int:
        """Send changed listener counts of dirty rooms; returns how many rooms were sent."""
        sent = 0
        self._ticks += 1
        dirty, self._dirty = self._dirty, set()
        for room_id in dirty:
            conns = self._rooms.get(room_id)
            room = self._store.cached(room_id)
            if not conns or room is None:
                continue
            if len(conns) >= self._large_room and self._ticks % self._large_room_every:
                self._dirty.add(room_id)  # later
                continue
            stats = (room.listener_count, len(room.queue))
            if self._stats_sent.get(room_id) == stats:
                continue
            self._stats_sent[room_id] = stats
            encoded = EncodedOnce(
                RoomStats(listeners=stats[0], queue_length=stats[1], version=room.version)
            )
            for conn in conns.values():
                conn.send(encoded)
            sent += 1
        return sent

    def resync(self, room_id: RoomId) -> None:
        """Events may have been missed: every local client gets the room afresh."""
        room = self._store.cached(room_id)
        if room is None:
            return
        for conn in self.connections(room_id):
            conn.send(Snapshot(snapshot=room.snapshot_for(conn.user_id)))
        self._dirty.add(room_id)

    async def run_stats(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            rooms = self.room_ids()
            # Other nodes' joins send no events: counts are read from the store. If the
            # store is away, the last counts stand.
            with contextlib.suppress(ChatroomsError):
                await self._store.refresh_counts(rooms)
            self._dirty.update(rooms)
            self.publish_stats()
