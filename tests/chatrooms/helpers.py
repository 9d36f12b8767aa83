"""Shared builders and a structural fingerprint of a room for the domain tests."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from chatrooms.events import Event, QueueEvent, Visibility
from chatrooms.ids import RoomId, UserId
from chatrooms.permissions import Grant, Role
from chatrooms.room import Member, Room

T0 = 1_000.0
ROOM_ID = RoomId("room-1")

HOST = UserId("host")
MOD = UserId("mod")
MOD2 = UserId("mod2")
SPK = UserId("spk")
SPK2 = UserId("spk2")
SPK3 = UserId("spk3")
LIS = UserId("lis")
LIS2 = UserId("lis2")
OUTSIDER = UserId("outsider")

NAMES = {
    HOST: "Hana",
    MOD: "Mo",
    MOD2: "Mia",
    SPK: "Sam",
    SPK2: "Sia",
    SPK3: "Sol",
    LIS: "Lee",
    LIS2: "Lou",
    OUTSIDER: "Oz",
}

# One actor per role in :func:`populated_room`.
ACTOR_OF = {Role.HOST: HOST, Role.MODERATOR: MOD, Role.SPEAKER: SPK, Role.LISTENER: LIS}


def make_room(*, stage_size: int = 10, kick_cooldown: float = 300.0) -> Room:
    return Room.create(
        room_id=ROOM_ID,
        host_id=HOST,
        host_name=NAMES[HOST],
        title="Morning talk",
        topics=("music",),
        languages=("en",),
        stage_size=stage_size,
        now=T0,
        kick_cooldown=kick_cooldown,
    )


def join(room: Room, user: UserId, grant: Grant | None = None, now: float = T0) -> list[Event]:
    return room.join(user, NAMES.get(user, str(user)), now=now, grant=grant)


def promote(room: Room, user: UserId, by: UserId = HOST) -> None:
    """Bring a present listener on stage as a speaker through invite + accept."""
    room.invite(by, user)
    room.accept_invite(user)


def populated_room(*, stage_size: int = 10) -> Room:
    """host; moderators mod, mod2; speakers spk, spk2, spk3 (spk3 force-muted);
    listeners lis, lis2 (lis2 with a raised hand)."""
    room = make_room(stage_size=stage_size)
    join(room, MOD, Grant.MODERATOR)
    join(room, MOD2, Grant.MODERATOR)
    for user in (SPK, SPK2, SPK3):
        join(room, user)
        promote(room, user)
    room.mute(HOST, SPK3)
    join(room, LIS)
    join(room, LIS2)
    room.raise_hand(LIS2)
    return room


def fingerprint(room: Room) -> tuple[Any, ...]:
    """Every field of the room, with dict *order* kept (the queue is FCFS by order)."""
    out: list[Any] = []
    for f in dataclasses.fields(room):
        value = getattr(room, f.name)
        if isinstance(value, dict):
            value = tuple(
                (k, dataclasses.astuple(v) if isinstance(v, Member) else v)
                for k, v in value.items()
            )
        elif isinstance(value, set):
            value = frozenset(value)
        out.append((f.name, value))
    return tuple(out)


def visibilities(events: Sequence[Event]) -> list[Visibility]:
    return [e.visibility for e in events]


def count(events: Sequence[Event], visibility: Visibility) -> int:
    return sum(1 for e in events if e.visibility is visibility)


def assert_versions(before: Room | tuple[int, int], room: Room, events: Sequence[Event]) -> None:
    """Counters moved by exactly the events returned, each event stamped in sequence."""
    v0, q0 = (before.version, before.queue_version) if isinstance(before, Room) else before
    v, q = v0, q0
    for e in events:
        if e.visibility is Visibility.PUBLIC:
            v += 1
        elif e.visibility is Visibility.QUEUE:
            q += 1
        assert e.version == v, e
        assert e.room_id == room.room_id
        if isinstance(e, QueueEvent):
            assert e.queue_version == q, e
    assert (room.version, room.queue_version) == (v, q)
