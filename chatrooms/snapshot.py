"""What a participant sees of a room at one version: sent on join and on resync."""

from __future__ import annotations

from dataclasses import dataclass

from chatrooms.ids import RoomId, UserId
from chatrooms.permissions import Role


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomInfo:
    """The lobby's view of a room."""

    room_id: RoomId
    title: str
    topics: tuple[str, ...]
    languages: tuple[str, ...]
    stage_size: int
    created_at: float
    locked: bool
    status: str
    speakers: tuple[str, ...]  # display names of the stage, host first
    listener_count: int


@dataclass(frozen=True, slots=True, kw_only=True)
class StageMember:
    user_id: UserId
    name: str
    role: Role
    muted: bool
    mute_forced: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueEntry:
    user_id: UserId
    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ViewerState:
    user_id: UserId
    name: str
    role: Role
    hand_position: int | None
    invited: bool
    muted: bool
    mute_forced: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomSnapshot:
    info: RoomInfo
    version: int
    queue_version: int
    stage: tuple[StageMember, ...]
    queue: tuple[QueueEntry, ...]  # the whole queue, for the stage only; empty for others
    queue_length: int
    invited: tuple[UserId, ...]  # pending invitations, for the stage only
    you: ViewerState | None
