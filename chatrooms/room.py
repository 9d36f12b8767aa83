"""A room: its stage, its speaker queue and its moderation. Commands in, events out.

Every command method authorizes the actor by capability and rank, checks everything
it needs *before* changing anything, then changes the state and returns the events
that describe the change. A command that raises has changed nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from chatrooms import errors
from chatrooms.events import (
    EndReason,
    Event,
    HandLowered,
    HandLoweredReason,
    HandRaised,
    InviteWithdrawn,
    LeaveReason,
    ListenerJoined,
    ListenerLeft,
    MuteChanged,
    ParticipantBanned,
    ParticipantJoined,
    ParticipantKicked,
    ParticipantLeft,
    QueueEvent,
    RoleChanged,
    RoomEndedEvent,
    RoomLockChanged,
    SpeakerInvited,
    Visibility,
)
from chatrooms.ids import RoomId, UserId
from chatrooms.permissions import Capability, Grant, Role, can
from chatrooms.snapshot import QueueEntry, RoomInfo, RoomSnapshot, StageMember, ViewerState

MAX_TITLE = 120
MAX_TOPICS = 5
MAX_TOPIC = 32
MAX_LANGUAGES = 5
MAX_LANGUAGE = 16
MAX_NAME = 64
MIN_STAGE, MAX_STAGE, DEFAULT_STAGE = 1, 50, 10
DEFAULT_KICK_COOLDOWN = 300.0

E = TypeVar("E", bound=Event)
Q = TypeVar("Q", bound=QueueEvent)


class RoomStatus(StrEnum):
    OPEN = "open"
    ENDED = "ended"


@dataclass(slots=True)
class Member:
    user_id: UserId
    name: str
    role: Role
    role_since: int  # order in which members took their current role: "oldest" means lowest
    muted: bool = True
    mute_forced: bool = False


def _clean_tags(
    values: tuple[str, ...] | list[str], limit: int, length: int, what: str
) -> tuple[str, ...]:
    out: list[str] = []
    for raw in values:
        tag = raw.strip()
        if not tag or len(tag) > length:
            raise errors.InvalidArgument(f"each of the {what} must be 1 to {length} characters")
        if tag.lower() not in (t.lower() for t in out):
            out.append(tag)
    if len(out) > limit:
        raise errors.InvalidArgument(f"at most {limit} {what}")
    return tuple(out)


def validate_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        raise errors.InvalidArgument(f"a display name must be 1 to {MAX_NAME} characters")
    return name


@dataclass(slots=True)
class Room:
    """One live room. Create it with :meth:`Room.create`."""

    room_id: RoomId
    title: str
    topics: tuple[str, ...]
    languages: tuple[str, ...]
    stage_size: int
    created_at: float
    kick_cooldown: float = DEFAULT_KICK_COOLDOWN
    status: RoomStatus = RoomStatus.OPEN
    locked: bool = False
    version: int = 0
    queue_version: int = 0
    members: dict[UserId, Member] = field(default_factory=dict)
    queue: dict[UserId, str] = field(default_factory=dict)  # FCFS: insertion order; value = name
    invites: dict[UserId, UserId] = field(default_factory=dict)  # invitee -> who invited
    bans: set[UserId] = field(default_factory=set)
    kicks: dict[UserId, float] = field(default_factory=dict)  # user -> may rejoin at
    _seq: int = 0
    _listeners: int = 0

    # ----------------------------------------------------------------- creation
    @classmethod
    def create(
        cls,
        *,
        room_id: RoomId,
        host_id: UserId,
        host_name: str,
        title: str,
        topics: tuple[str, ...] | list[str] = (),
        languages: tuple[str, ...] | list[str] = (),
        stage_size: int = DEFAULT_STAGE,
        now: float,
        kick_cooldown: float = DEFAULT_KICK_COOLDOWN,
    ) -> Room:
        title = title.strip()
        if not title or len(title) > MAX_TITLE:
            raise errors.InvalidArgument(f"the title must be 1 to {MAX_TITLE} characters")
        if not MIN_STAGE <= stage_size <= MAX_STAGE:
            raise errors.InvalidArgument(f"the stage size must be {MIN_STAGE} to {MAX_STAGE}")
        room = cls(
            room_id=room_id,
            title=title,
            topics=_clean_tags(topics, MAX_TOPICS, MAX_TOPIC, "topics"),
            languages=_clean_tags(languages, MAX_LANGUAGES, MAX_LANGUAGE, "languages"),
            stage_size=stage_size,
            created_at=now,
            kick_cooldown=kick_cooldown,
        )
        room._add_member(host_id, validate_name(host_name), Role.HOST)
        return room

    # ------------------------------------------------------------------ queries
    @property
    def is_open(self) -> bool:
        return self.status is RoomStatus.OPEN

    @property
    def host(self) -> Member | None:
        return next((m for m in self.members.values() if m.role is Role.HOST), None)

    @property
    def listener_count(self) -> int:
        return self._listeners

    @property
    def stage(self) -> list[Member]:
        """Stage members, host first, then by rank, then by when they came on stage."""
        on = [m for m in self.members.values() if m.role.on_stage]
        on.sort(key=lambda m: (-m.role.rank, m.role_since))
        return on

    @property
    def stage_count(self) -> int:
        return len(self.members) - self._listeners

    def role_of(self, user_id: UserId) -> Role | None:
        member = self.members.get(user_id)
        return member.role if member else None

    def position_of(self, user_id: UserId) -> int | None:
        """1-based place in the speaker queue, or None."""
        for i, uid in enumerate(self.queue, start=1):
            if uid == user_id:
                return i
        return None

    def audible(self, user_id: UserId) -> bool:
        """Whether the server may forward this user's audio: on stage and not muted."""
        member = self.members.get(user_id)
        return bool(member and member.role.on_stage and not member.muted and self.is_open)

    def sees_queue(self, user_id: UserId) -> bool:
        """Whether QUEUE events reach this user (stage, queue, invitees)."""
        member = self.members.get(user_id)
        if member is None:
            return False
        return member.role.on_stage or user_id in self.queue or user_id in self.invites

    def info(self) -> RoomInfo:
        return RoomInfo(
            room_id=self.room_id,
            title=self.title,
            topics=self.topics,
            languages=self.languages,
            stage_size=self.stage_size,
            created_at=self.created_at,
            locked=self.locked,
            status=self.status.value,
            speakers=tuple(m.name for m in self.stage),
            listener_count=self._listeners,
        )

    def snapshot_for(self, user_id: UserId | None) -> RoomSnapshot:
        """The room as this viewer may see it: the whole queue only for the stage."""
        member = self.members.get(user_id) if user_id is not None else None
        staff = member is not None and member.role.on_stage
        queue = tuple(QueueEntry(user_id=u, name=n) for u, n in self.queue.items()) if staff else ()
        viewer = None
        if member is not None:
            viewer = ViewerState(
                user_id=member.user_id,
                name=member.name,
                role=member.role,
                hand_position=self.position_of(member.user_id),
                invited=member.user_id in self.invites,
                muted=member.muted,
                mute_forced=member.mute_forced,
            )
        return RoomSnapshot(
            info=self.info(),
            version=self.version,
            queue_version=self.queue_version,
            stage=tuple(
                StageMember(
                    user_id=m.user_id,
                    name=m.name,
                    role=m.role,
                    muted=m.muted,
                    mute_forced=m.mute_forced,
                )
                for m in self.stage
            ),
            queue=queue,
            queue_length=len(self.queue),
            invited=tuple(self.invites) if staff else (),
            you=viewer,
        )

    def iter_members(self) -> Iterator[Member]:
        return iter(self.members.values())

    # --------------------------------------------------------------- internals
    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _add_member(self, user_id: UserId, name: str, role: Role) -> Member:
        member = Member(user_id=user_id, name=name, role=role, role_since=self._next_seq())
        self.members[user_id] = member
        if role is Role.LISTENER:
            self._listeners += 1
        return member

    def _set_role(self, member: Member, role: Role) -> None:
        if (member.role is Role.LISTENER) != (role is Role.LISTENER):
            self._listeners += 1 if role is Role.LISTENER else -1
        if member.role.on_stage != role.on_stage:
            member.muted, member.mute_forced = True, False  # new speakers start muted
        member.role = role
        member.role_since = self._next_seq()

    def _public(self, cls: type[E], **fields: Any) -> E:
        self.version += 1
        return cls(room_id=self.room_id, version=self.version, **fields)

    def _queued(self, cls: type[Q], **fields: Any) -> Q:
        self.queue_version += 1
        return cls(
            room_id=self.room_id, version=self.version, queue_version=self.queue_version, **fields
        )

    def _unversioned(self, cls: type[E], **fields: Any) -> E:
        assert cls.visibility is Visibility.AUDIENCE
        return cls(room_id=self.room_id, version=self.version, **fields)

    def _require_open(self) -> None:
        if not self.is_open:
            raise errors.RoomEnded("the room has ended")

    def _actor(self, user_id: UserId, capability: Capability | None = None) -> Member:
        self._require_open()
        member = self.members.get(user_id)
        if member is None:
            raise errors.NotInRoom("you are not in this room")
        if capability is not None and not can(member.role, capability):
            raise errors.Forbidden(f"a {member.role.value} may not do this")
        return member

    def _target(self, actor: Member, user_id: UserId) -> Member:
        target = self.members.get(user_id)
        if target is None:
            raise errors.InvalidTarget("that user is not in this room")
        if target.user_id == actor.user_id:
            raise errors.InvalidTarget("you cannot do this to yourself")
        if not actor.role.outranks(target.role):
            raise errors.Forbidden(f"a {actor.role.value} may not act on a {target.role.value}")
        return target

    def _stage_has_room(self) -> None:
        if self.stage_count >= self.stage_size:
            raise errors.StageFull(f"the stage is full ({self.stage_size})")

    def _drop_from_queue(self, user_id: UserId, reason: HandLoweredReason) -> list[Event]:
        position = self.position_of(user_id)
        if position is None:
            return []
        del self.queue[user_id]
        return [self._queued(HandLowered, user_id=user_id, position=position, reason=reason)]

    def _drop_invite(self, user_id: UserId, declined: bool) -> list[Event]:
        if self.invites.pop(user_id, None) is None:
            return []
        return [self._queued(InviteWithdrawn, user_id=user_id, declined=declined)]

    def _remove(self, member: Member, reason: LeaveReason) -> list[Event]:
        """Take a member out and, if it was the host, hand the room over (or end it)."""
        events: list[Event] = []
        events += self._drop_from_queue(member.user_id, HandLoweredReason.LEFT)
        events += self._drop_invite(member.user_id, declined=False)
        del self.members[member.user_id]
        if member.role is Role.LISTENER:
            self._listeners -= 1
        if reason in (LeaveReason.LEFT, LeaveReason.DISCONNECTED):
            if member.role is Role.LISTENER:
                events.append(
                    self._unversioned(ListenerLeft, user_id=member.user_id, reason=reason)
                )
            else:
                events.append(
                    self._public(
                        ParticipantLeft, user_id=member.user_id, role=member.role, reason=reason
                    )
                )
        if member.role is Role.HOST:
            events += self._hand_over()
        return events

    def _hand_over(self) -> list[Event]:
        """The oldest moderator, else the oldest speaker, becomes host; else the room ends."""
        for role in (Role.MODERATOR, Role.SPEAKER):
            candidates = [m for m in self.members.values() if m.role is role]
            if candidates:
                heir = min(candidates, key=lambda m: m.role_since)
                self._set_role(heir, Role.HOST)
                heir.mute_forced = False  # nobody outranks the host any more
                return [
                    self._public(
                        RoleChanged,
                        user_id=heir.user_id,
                        name=heir.name,
                        role=Role.HOST,
                        previous=role,
                        by=None,
                    )
                ]
        return self._end(None, EndReason.NO_HOST)

    def _end(self, by: UserId | None, reason: EndReason) -> list[Event]:
        self.status = RoomStatus.ENDED
        self.members.clear()
        self.queue.clear()
        self.invites.clear()
        self._listeners = 0
        return [self._public(RoomEndedEvent, by=by, reason=reason)]

    # ---------------------------------------------------------- join and leave
    def join(
        self, user_id: UserId, name: str, *, now: float, grant: Grant | None = None
    ) -> list[Event]:
        """Enter the room. Joining again while still a member keeps the role (a reconnect)."""
        self._require_open()
        existing = self.members.get(user_id)
        if existing is not None:
            return []
        name = validate_name(name)
        if user_id in self.bans:
            raise errors.Banned("you are banned from this room")
        until = self.kicks.get(user_id)
        if until is not None and now < until:
            raise errors.KickedCooldown(
                "you were removed from this room; try again later", retry_after=until - now
            )
        if self.locked and grant is None:
            raise errors.RoomLocked("the room is locked")
        self.kicks.pop(user_id, None)  # a lapsed cool-down: only once nothing else can refuse
        if self.stage_count >= self.stage_size:
            # A full stage: the grant holder comes in as a listener and can be invited.
            grant = None
        events: list[Event] = []
        role = Role.LISTENER
        if grant is Grant.MODERATOR:
            role = Role.MODERATOR
        elif grant is Grant.HOST:
            # The holder of a host grant (the room's owner) takes the room back.
            current = self.host
            if current is not None:
                self._set_role(current, Role.MODERATOR)
                events.append(
                    self._public(
                        RoleChanged,
                        user_id=current.user_id,
                        name=current.name,
                        role=Role.MODERATOR,
                        previous=Role.HOST,
                        by=user_id,
                    )
                )
            role = Role.HOST
        self._add_member(user_id, name, role)
        if role is Role.LISTENER:
            events.append(self._unversioned(ListenerJoined, user_id=user_id, name=name))
        else:
            events.append(self._public(ParticipantJoined, user_id=user_id, name=name, role=role))
        return events

    def leave(self, user_id: UserId, *, reason: LeaveReason = LeaveReason.LEFT) -> list[Event]:
        member = self._actor(user_id)
        if reason not in (LeaveReason.LEFT, LeaveReason.DISCONNECTED):
            # Other reasons belong to kick, ban and end, which emit their own events.
            raise errors.InvalidArgument(f"a participant cannot leave with reason {reason.value}")
        return self._remove(member, reason)

    # ------------------------------------------------------------ the queue
    def raise_hand(self, user_id: UserId) -> list[Event]:
        member = self._actor(user_id, Capability.RAISE_HAND)
        if user_id in self.queue:
            raise errors.InvalidState("your hand is already raised")
        self.queue[user_id] = member.name
        return [
            self._queued(HandRaised, user_id=user_id, name=member.name, position=len(self.queue))
        ]

    def lower_hand(self, actor_id: UserId, target_id: UserId | None = None) -> list[Event]:
        """Lower your own hand, or (a moderator) dismiss someone else's."""
        if target_id is None or target_id == actor_id:
            self._actor(actor_id)
            if actor_id not in self.queue:
                raise errors.InvalidState("your hand is not raised")
            return self._drop_from_queue(actor_id, HandLoweredReason.LOWERED)
        actor = self._actor(actor_id, Capability.INVITE)
        self._target(actor, target_id)
        if target_id not in self.queue:
            raise errors.InvalidState("that user's hand is not raised")
        return self._drop_from_queue(target_id, HandLoweredReason.DISMISSED)

    def invite(self, actor_id: UserId, target_id: UserId) -> list[Event]:
        """Invite a listener (from the queue or not) to the stage."""
        actor = self._actor(actor_id, Capability.INVITE)
        target = self._target(actor, target_id)
        if target.role is not Role.LISTENER:
            raise errors.InvalidTarget("only listeners can be invited to speak")
        if target_id in self.invites:
            raise errors.InvalidState("that user is already invited")
        self._stage_has_room()
        self.invites[target_id] = actor_id
        return [self._queued(SpeakerInvited, user_id=target_id, by=actor_id)]

    def accept_invite(self, user_id: UserId) -> list[Event]:
        member = self._actor(user_id)
        if user_id not in self.invites:
            raise errors.InvalidState("you have no invitation")
        if member.role is not Role.LISTENER:
            raise errors.InvalidState("you are already on stage")
        self._stage_has_room()
        by = self.invites.pop(user_id)
        events = self._drop_from_queue(user_id, HandLoweredReason.ON_STAGE)
        self._set_role(member, Role.SPEAKER)
        events.append(
            self._public(
                RoleChanged,
                user_id=user_id,
                name=member.name,
                role=Role.SPEAKER,
                previous=Role.LISTENER,
                by=by,
            )
        )
        return events

    def decline_invite(self, user_id: UserId) -> list[Event]:
        self._actor(user_id)
        if user_id not in self.invites:
            raise errors.InvalidState("you have no invitation")
        return self._drop_invite(user_id, declined=True)

    # ------------------------------------------------------------ the stage
    def move_to_audience(self, actor_id: UserId, target_id: UserId) -> list[Event]:
        actor = self._actor(actor_id, Capability.MOVE_TO_AUDIENCE)
        target = self._target(actor, target_id)
        if not target.role.on_stage:
            raise errors.InvalidTarget("that user is not on stage")
        return self._to_audience(target, by=actor_id)

    def step_down(self, user_id: UserId) -> list[Event]:
        member = self._actor(user_id, Capability.STEP_DOWN)
        return self._to_audience(member, by=user_id)

    def _to_audience(self, member: Member, by: UserId) -> list[Event]:
        previous = member.role
        self._set_role(member, Role.LISTENER)
        return [
            self._public(
                RoleChanged,
                user_id=member.user_id,
                name=member.name,
                role=Role.LISTENER,
                previous=previous,
                by=by,
            )
        ]

    def mute(self, actor_id: UserId, target_id: UserId | None = None) -> list[Event]:
        """Mute yourself, or (a moderator) force-mute a speaker until a moderator allows it."""
        if target_id is None or target_id == actor_id:
            member = self._actor(actor_id, Capability.PUBLISH)
            if member.muted:
                raise errors.InvalidState("you are already muted")
            member.muted = True
            return [
                self._public(MuteChanged, user_id=actor_id, muted=True, forced=False, by=actor_id)
            ]
        actor = self._actor(actor_id, Capability.MUTE_OTHERS)
        target = self._target(actor, target_id)
        if not target.role.on_stage:
            raise errors.InvalidTarget("that user is not on stage")
        if target.muted and target.mute_forced:
            raise errors.InvalidState("that speaker is already muted")
        target.muted, target.mute_forced = True, True
        return [self._public(MuteChanged, user_id=target_id, muted=True, forced=True, by=actor_id)]

    def unmute(self, actor_id: UserId, target_id: UserId | None = None) -> list[Event]:
        """Unmute yourself; a moderator can only lift a forced mute (never open your mic)."""
        if target_id is None or target_id == actor_id:
            member = self._actor(actor_id, Capability.PUBLISH)
            if member.mute_forced:
                raise errors.Forbidden("a moderator muted you; ask to be allowed to speak")
            if not member.muted:
                raise errors.InvalidState("you are not muted")
            member.muted = False
            return [
                self._public(MuteChanged, user_id=actor_id, muted=False, forced=False, by=actor_id)
            ]
        actor = self._actor(actor_id, Capability.MUTE_OTHERS)
        target = self._target(actor, target_id)
        if not target.mute_forced:
            raise errors.InvalidState("that speaker was not muted by a moderator")
        target.mute_forced = False
        return [self._public(MuteChanged, user_id=target_id, muted=True, forced=False, by=actor_id)]

    # -------------------------------------------------------- moderation
    def kick(self, actor_id: UserId, target_id: UserId, *, now: float) -> list[Event]:
        actor = self._actor(actor_id, Capability.KICK)
        target = self._target(actor, target_id)
        until = now + self.kick_cooldown
        self.kicks[target_id] = until
        events = [
            self._public(
                ParticipantKicked, user_id=target_id, role=target.role, by=actor_id, until=until
            )
        ]
        return events + self._remove(target, LeaveReason.KICKED)

    def ban(self, actor_id: UserId, target_id: UserId) -> list[Event]:
        """Ban for the room's lifetime; the target need not be in the room now."""
        actor = self._actor(actor_id, Capability.BAN)
        if target_id == actor_id:
            raise errors.InvalidTarget("you cannot do this to yourself")
        if target_id in self.bans:
            raise errors.InvalidState("that user is already banned")
        target = self.members.get(target_id)
        if target is not None:
            self._target(actor, target_id)
        self.bans.add(target_id)
        self.kicks.pop(target_id, None)
        events: list[Event] = [
            self._public(
                ParticipantBanned,
                user_id=target_id,
                role=target.role if target else None,
                by=actor_id,
            )
        ]
        if target is not None:
            events += self._remove(target, LeaveReason.BANNED)
        return events

    def add_moderator(self, actor_id: UserId, target_id: UserId) -> list[Event]:
        actor = self._actor(actor_id, Capability.MANAGE_MODERATORS)
        target = self._target(actor, target_id)
        if target.role is Role.MODERATOR:
            raise errors.InvalidState("that user is already a moderator")
        if target.role is Role.LISTENER:
            self._stage_has_room()
        events = self._drop_from_queue(target_id, HandLoweredReason.ON_STAGE)
        events += self._drop_invite(target_id, declined=False)
        previous = target.role
        muted, forced = target.muted, target.mute_forced
        self._set_role(target, Role.MODERATOR)
        if previous.on_stage:
            target.muted, target.mute_forced = muted, forced
        events.append(
            self._public(
                RoleChanged,
                user_id=target_id,
                name=target.name,
                role=Role.MODERATOR,
                previous=previous,
                by=actor_id,
            )
        )
        return events

    def remove_moderator(self, actor_id: UserId, target_id: UserId) -> list[Event]:
        """A moderator goes back to being a speaker (they stay on stage)."""
        actor = self._actor(actor_id, Capability.MANAGE_MODERATORS)
        target = self._target(actor, target_id)
        if target.role is not Role.MODERATOR:
            raise errors.InvalidTarget("that user is not a moderator")
        muted, forced = target.muted, target.mute_forced
        self._set_role(target, Role.SPEAKER)
        target.muted, target.mute_forced = muted, forced
        return [
            self._public(
                RoleChanged,
                user_id=target_id,
                name=target.name,
                role=Role.SPEAKER,
                previous=Role.MODERATOR,
                by=actor_id,
            )
        ]

    def set_locked(self, actor_id: UserId, locked: bool) -> list[Event]:
        self._actor(actor_id, Capability.LOCK)
        if self.locked == locked:
            raise errors.InvalidState("the room is already " + ("locked" if locked else "unlocked"))
        self.locked = locked
        return [self._public(RoomLockChanged, locked=locked, by=actor_id)]

    def end(self, actor_id: UserId) -> list[Event]:
        self._actor(actor_id, Capability.END_ROOM)
        return self._end(actor_id, EndReason.ENDED_BY_HOST)
