"""Events a room emits. Frozen: an event is a fact that happened, sent as it is.

Each event class has a :class:`Visibility` that tells the server who receives it:

* ``PUBLIC`` events change the room's public state and bump ``version``; every
  participant receives them and can detect a gap by the version.
* ``QUEUE`` events (hands, invitations) bump ``queue_version`` instead and go only to
  the stage, the people in the queue and the invitee: with 30,000 listeners a hand
  raise must not cost 30,000 messages.
* ``AUDIENCE`` events (a listener came or went) are not sent at all; the server
  aggregates them into the listener count it publishes at most once a second.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

from chatrooms.ids import RoomId, UserId
from chatrooms.permissions import Role


class Visibility(StrEnum):
    PUBLIC = "public"
    QUEUE = "queue"
    AUDIENCE = "audience"


class LeaveReason(StrEnum):
    LEFT = "left"
    DISCONNECTED = "disconnected"
    KICKED = "kicked"
    BANNED = "banned"
    ROOM_ENDED = "room_ended"


class HandLoweredReason(StrEnum):
    LOWERED = "lowered"  # by the raiser
    DISMISSED = "dismissed"  # by a moderator
    ON_STAGE = "on_stage"  # accepted an invitation
    LEFT = "left"


class EndReason(StrEnum):
    ENDED_BY_HOST = "ended_by_host"
    NO_HOST = "no_host"  # the host left and nobody on stage could take over


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    visibility: ClassVar[Visibility] = Visibility.PUBLIC
    room_id: RoomId
    version: int  # the room's public version after this event (unchanged by QUEUE/AUDIENCE)


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueEvent(Event):
    visibility: ClassVar[Visibility] = Visibility.QUEUE
    queue_version: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ParticipantJoined(Event):
    """Somebody joined straight onto the stage (a host or moderator grant)."""

    user_id: UserId
    name: str
    role: Role


@dataclass(frozen=True, slots=True, kw_only=True)
class ParticipantLeft(Event):
    """A stage member left the room."""

    user_id: UserId
    role: Role
    reason: LeaveReason


@dataclass(frozen=True, slots=True, kw_only=True)
class ListenerJoined(Event):
    visibility: ClassVar[Visibility] = Visibility.AUDIENCE
    user_id: UserId
    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ListenerLeft(Event):
    visibility: ClassVar[Visibility] = Visibility.AUDIENCE
    user_id: UserId
    reason: LeaveReason


@dataclass(frozen=True, slots=True, kw_only=True)
class RoleChanged(Event):
    user_id: UserId
    name: str
    role: Role
    previous: Role
    by: UserId | None  # None: the room did it (host hand-over)


@dataclass(frozen=True, slots=True, kw_only=True)
class MuteChanged(Event):
    user_id: UserId
    muted: bool
    forced: bool  # muted by a moderator: only a moderator can allow unmuting
    by: UserId


@dataclass(frozen=True, slots=True, kw_only=True)
class ParticipantKicked(Event):
    user_id: UserId
    role: Role
    by: UserId
    until: float  # may rejoin after this time (seconds since the epoch)


@dataclass(frozen=True, slots=True, kw_only=True)
class ParticipantBanned(Event):
    user_id: UserId
    role: Role | None  # None: was not in the room
    by: UserId


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomLockChanged(Event):
    locked: bool
    by: UserId


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomEndedEvent(Event):
    by: UserId | None
    reason: EndReason


@dataclass(frozen=True, slots=True, kw_only=True)
class HandRaised(QueueEvent):
    user_id: UserId
    name: str
    position: int  # 1-based place in the queue


@dataclass(frozen=True, slots=True, kw_only=True)
class HandLowered(QueueEvent):
    user_id: UserId
    position: int  # the place it had: those behind it move up by one
    reason: HandLoweredReason


@dataclass(frozen=True, slots=True, kw_only=True)
class SpeakerInvited(QueueEvent):
    user_id: UserId
    by: UserId


@dataclass(frozen=True, slots=True, kw_only=True)
class InviteWithdrawn(QueueEvent):
    """An invitation ended without the invitee coming on stage."""

    user_id: UserId
    declined: bool  # True: the invitee said no; False: it lapsed (left, promoted otherwise)
