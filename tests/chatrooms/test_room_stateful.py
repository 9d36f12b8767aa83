"""Random command sequences from random users against one Room.

After every command:

* a refused command (``ChatroomsError``) changed nothing, structurally;
* ``version``/``queue_version`` moved by exactly the PUBLIC/QUEUE events returned and
  every event is stamped with the counter it produced;
* each event agrees with the state that follows it (unless a later event of the same
  batch is about the same user);
* a *projection* built only from the events (what a client that saw every event would
  believe) equals the room's state: members and roles, mute flags, the queue in order,
  invitations, lock, status, bans and kick cool-downs;
* the structural invariants of the room hold.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from chatrooms.errors import ChatroomsError, ErrorCode
from chatrooms.events import (
    Event,
    HandLowered,
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
from chatrooms.permissions import Grant, Rank, Role
from chatrooms.room import Room, RoomStatus
from tests.chatrooms.helpers import fingerprint

USERS = [UserId(f"u{i}") for i in range(8)]
OWNER = USERS[0]
COOLDOWN = 30.0

# An index below len(USERS) names any user of the pool (often not in the room); the next
# ranges of len(USERS) pick a current member, a host or moderator, and somebody in the queue
# or invited, so that commands are often meaningful. sampled_from draws evenly
# (integers() would favour 0, the owner).
who_idx = st.sampled_from(range(4 * len(USERS)))
maybe_self = st.one_of(st.none(), who_idx)
waiting_idx = st.one_of(who_idx, st.sampled_from(range(3 * len(USERS), 4 * len(USERS))))
# ... and two more ranges: somebody *outside* the room, and somebody kicked or banned.
outside_idx = st.one_of(who_idx, st.sampled_from(range(4 * len(USERS), 6 * len(USERS))))
grants = st.sampled_from([None, None, Grant.MODERATOR, Grant.HOST])
waits = st.sampled_from([0.0, 0.0, COOLDOWN])  # joins often come after a cool-down lapsed
names = st.sampled_from(["Ann", "  Bo  ", "Cy", ""])  # "" is refused: InvalidArgument


@dataclass
class Projection:
    """A client's view of the room, built from events alone."""

    members: dict[UserId, list[object]] = field(default_factory=dict)  # [role, muted, forced]
    queue: list[UserId] = field(default_factory=list)
    invites: set[UserId] = field(default_factory=set)
    bans: set[UserId] = field(default_factory=set)
    kicks: dict[UserId, float] = field(default_factory=dict)
    locked: bool = False
    ended: bool = False

    def apply(self, e: Event) -> None:
        if isinstance(e, ParticipantJoined | ListenerJoined):
            assert e.user_id not in self.members
            role = e.role if isinstance(e, ParticipantJoined) else Role.LISTENER
            self.members[e.user_id] = [role, True, False]
            self.kicks.pop(e.user_id, None)
        elif isinstance(e, ParticipantLeft | ListenerLeft):
            assert e.reason in (LeaveReason.LEFT, LeaveReason.DISCONNECTED)
            role = e.role if isinstance(e, ParticipantLeft) else Role.LISTENER
            assert self.members.pop(e.user_id)[0] is role
            assert e.user_id not in self.queue and e.user_id not in self.invites
        elif isinstance(e, ParticipantKicked):
            assert self.members[e.user_id][0] is e.role
            del self.members[e.user_id]
            self.kicks[e.user_id] = e.until
        elif isinstance(e, ParticipantBanned):
            if e.role is None:
                assert e.user_id not in self.members
            else:
                assert self.members.pop(e.user_id)[0] is e.role
            self.bans.add(e.user_id)
            self.kicks.pop(e.user_id, None)
        elif isinstance(e, RoleChanged):
            member = self.members[e.user_id]
            assert member[0] is e.previous and e.role is not e.previous
            if e.previous.on_stage != e.role.on_stage:
                member[1], member[2] = True, False  # the stage is always entered muted
            if e.role is Role.HOST:
                member[2] = False  # nobody can force-mute the host
            if not e.previous.on_stage and e.role.on_stage:
                assert e.user_id not in self.queue  # HandLowered(ON_STAGE) came first
                self.invites.discard(e.user_id)  # an accepted invitation is consumed
            member[0] = e.role
        elif isinstance(e, MuteChanged):
            member = self.members[e.user_id]
            assert member[0].on_stage  # type: ignore[attr-defined]
            member[1], member[2] = e.muted, e.forced
        elif isinstance(e, RoomLockChanged):
            assert self.locked is not e.locked
            self.locked = e.locked
        elif isinstance(e, RoomEndedEvent):
            self.ended = True
            self.members.clear()
            self.queue.clear()
            self.invites.clear()
        elif isinstance(e, HandRaised):
            assert e.user_id not in self.queue
            self.queue.append(e.user_id)
            assert e.position == len(self.queue)
        elif isinstance(e, HandLowered):
            assert self.queue.index(e.user_id) + 1 == e.position
            self.queue.remove(e.user_id)
        elif isinstance(e, SpeakerInvited):
            assert e.user_id not in self.invites
            self.invites.add(e.user_id)
        elif isinstance(e, InviteWithdrawn):
            self.invites.remove(e.user_id)
        else:  # pragma: no cover - a new event type needs a rule here
            raise AssertionError(f"unknown event {e!r}")


def _about(e: Event) -> UserId | None:
    return getattr(e, "user_id", None)


def check_event_against_state(room: Room, e: Event, later: Sequence[Event]) -> None:
    """The state after the batch shows what the event says, unless a later event of the
    batch is about the same user (or ended the room)."""
    if any(isinstance(x, RoomEndedEvent) for x in later):
        assert room.status is RoomStatus.ENDED
        return
    user = _about(e)
    if user is not None and any(_about(x) == user for x in later):
        return
    member = room.members.get(user) if user is not None else None
    if isinstance(e, RoleChanged | ParticipantJoined):
        assert member is not None and member.role is e.role
    elif isinstance(e, ListenerJoined):
        assert member is not None and member.role is Role.LISTENER
    elif isinstance(e, HandRaised):
        assert room.position_of(e.user_id) == e.position
    elif isinstance(e, HandLowered):
        assert e.user_id not in room.queue
    elif isinstance(e, ParticipantLeft | ListenerLeft | ParticipantKicked | ParticipantBanned):
        assert e.user_id not in room.members and e.user_id not in room.queue
        assert e.user_id not in room.invites
        if isinstance(e, ParticipantBanned):
            assert e.user_id in room.bans
        if isinstance(e, ParticipantKicked):
            assert room.kicks[e.user_id] == e.until
    elif isinstance(e, MuteChanged):
        assert member is not None and (member.muted, member.mute_forced) == (e.muted, e.forced)
    elif isinstance(e, SpeakerInvited):
        assert e.user_id in room.invites
    elif isinstance(e, InviteWithdrawn):
        assert e.user_id not in room.invites
    elif isinstance(e, RoomLockChanged):
        assert room.locked is e.locked
    elif isinstance(e, RoomEndedEvent):
        assert room.status is RoomStatus.ENDED


class RoomMachine(RuleBasedStateMachine):
    room: Room
    model: Projection

    def __init__(self) -> None:
        super().__init__()
        self.now = 1_000.0
        self.errors: dict[ErrorCode, int] = {}

    @initialize(
        stage_size=st.integers(min_value=1, max_value=5),
        listeners=st.integers(min_value=0, max_value=4),
        moderator=st.booleans(),
    )
    def create(self, stage_size: int, listeners: int, moderator: bool) -> None:
        self.open_room(stage_size, listeners, moderator)

    @precondition(lambda self: not self.room.is_open)
    @rule(
        stage_size=st.integers(min_value=1, max_value=5),
        listeners=st.integers(min_value=0, max_value=4),
        moderator=st.booleans(),
    )
    def reopen(self, stage_size: int, listeners: int, moderator: bool) -> None:
        """An ended room stays ended; carry on with a new one so steps are not wasted."""
        self.open_room(stage_size, listeners, moderator)

    def open_room(self, stage_size: int, listeners: int, moderator: bool) -> None:
        self.room = Room.create(
            room_id=RoomId("r"),
            host_id=OWNER,
            host_name="Owner",
            title="Random talk",
            stage_size=stage_size,
            now=self.now,
            kick_cooldown=COOLDOWN,
        )
        self.model = Projection(members={OWNER: [Role.HOST, True, False]})
        # Start with some people in the room, through the same checked path.
        for user in USERS[1 : 1 + listeners]:
            self.run(partial(self.room.join, user, "Early", now=self.now))
        if moderator:
            self.run(lambda: self.room.join(USERS[7], "Mod", now=self.now, grant=Grant.MODERATOR))

    # ------------------------------------------------------------------ helpers
    def who(self, i: int) -> UserId:
        n = len(USERS)
        members = sorted(self.room.members)
        staff = sorted(u for u, m in self.room.members.items() if m.role.rank >= Rank.MODERATOR)
        waiting = sorted(set(self.room.queue) | set(self.room.invites))
        outside = [u for u in USERS if u not in self.room.members]
        removed = sorted(self.room.kicks.keys() | self.room.bans)
        pool = [USERS, members, staff, waiting, outside, removed][i // n] or members or USERS
        return pool[i % len(pool)]

    def target(self, i: int | None) -> UserId | None:
        return None if i is None else self.who(i)

    def run(self, command: Callable[[], list[Event]]) -> None:
        room = self.room
        before = fingerprint(room)
        v0, q0 = room.version, room.queue_version
        try:
            events = command()
        except ChatroomsError as err:
            assert isinstance(err.code, ErrorCode) and err.code is type(err).code
            assert fingerprint(room) == before, f"{err!r} changed the room"
            self.errors[err.code] = self.errors.get(err.code, 0) + 1
            return
        if not events:
            assert fingerprint(room) == before, "a command without events changed the room"
        # counters: exactly one step per PUBLIC / QUEUE event, stamped in order
        v, q = v0, q0
        for e in events:
            assert e.room_id == room.room_id
            if e.visibility is Visibility.PUBLIC:
                v += 1
            elif e.visibility is Visibility.QUEUE:
                q += 1
            assert e.version == v
            if isinstance(e, QueueEvent):
                assert e.queue_version == q
        assert (room.version, room.queue_version) == (v, q)
        for i, e in enumerate(events):
            check_event_against_state(room, e, events[i + 1 :])
            self.model.apply(e)
        self.compare_projection()

    def compare_projection(self) -> None:
        room, model = self.room, self.model
        actual = {u: [m.role, m.muted, m.mute_forced] for u, m in room.members.items()}
        assert actual == model.members
        assert list(room.queue) == model.queue
        assert set(room.invites) == model.invites
        assert room.bans == model.bans
        assert room.kicks == model.kicks
        assert room.locked is model.locked
        assert (room.status is RoomStatus.ENDED) is model.ended

    # -------------------------------------------------------------------- rules
    @rule(
        dt=st.one_of(
            st.sampled_from([0.0, 1.0, COOLDOWN - 0.5, COOLDOWN, 2 * COOLDOWN]),
            st.floats(min_value=0, max_value=2 * COOLDOWN),
        )
    )
    def advance(self, dt: float) -> None:
        self.now += dt

    @rule(i=outside_idx, name=names, wait=waits)
    def join(self, i: int, name: str, wait: float) -> None:
        self.now += wait
        user = self.who(i)
        self.run(lambda: self.room.join(user, name, now=self.now))

    @rule(i=outside_idx, grant=grants, wait=waits)
    def join_with_grant(self, i: int, grant: Grant | None, wait: float) -> None:
        self.now += wait
        user = self.who(i)
        self.run(lambda: self.room.join(user, "Granted", now=self.now, grant=grant))

    @rule(i=who_idx, reason=st.sampled_from(list(LeaveReason)))
    def leave(self, i: int, reason: LeaveReason) -> None:
        user = self.who(i)
        self.run(lambda: self.room.leave(user, reason=reason))

    @rule(i=who_idx)
    def raise_hand(self, i: int) -> None:
        user = self.who(i)
        self.run(lambda: self.room.raise_hand(user))

    @rule(i=who_idx, t=maybe_self)
    def lower_hand(self, i: int, t: int | None) -> None:
        actor, target = self.who(i), self.target(t)
        self.run(lambda: self.room.lower_hand(actor, target))

    @rule(i=who_idx, t=who_idx)
    def invite(self, i: int, t: int) -> None:
        actor, target = self.who(i), self.who(t)
        self.run(lambda: self.room.invite(actor, target))

    @rule(i=waiting_idx)
    def accept_invite(self, i: int) -> None:
        user = self.who(i)
        self.run(lambda: self.room.accept_invite(user))

    @rule(i=waiting_idx)
    def decline_invite(self, i: int) -> None:
        user = self.who(i)
        self.run(lambda: self.room.decline_invite(user))

    @rule(i=who_idx, t=who_idx)
    def move_to_audience(self, i: int, t: int) -> None:
        actor, target = self.who(i), self.who(t)
        self.run(lambda: self.room.move_to_audience(actor, target))

    @rule(i=who_idx)
    def step_down(self, i: int) -> None:
        user = self.who(i)
        self.run(lambda: self.room.step_down(user))

    @rule(i=who_idx, t=maybe_self)
    def mute(self, i: int, t: int | None) -> None:
        actor, target = self.who(i), self.target(t)
        self.run(lambda: self.room.mute(actor, target))

    @rule(i=who_idx, t=maybe_self)
    def unmute(self, i: int, t: int | None) -> None:
        actor, target = self.who(i), self.target(t)
        self.run(lambda: self.room.unmute(actor, target))

    @rule(i=who_idx, t=who_idx)
    def kick(self, i: int, t: int) -> None:
        actor, target = self.who(i), self.who(t)
        self.run(lambda: self.room.kick(actor, target, now=self.now))

    @rule(i=who_idx, t=outside_idx)
    def ban(self, i: int, t: int) -> None:
        actor, target = self.who(i), self.who(t)
        self.run(lambda: self.room.ban(actor, target))

    @rule(i=who_idx, t=who_idx)
    def add_moderator(self, i: int, t: int) -> None:
        actor, target = self.who(i), self.who(t)
        self.run(lambda: self.room.add_moderator(actor, target))

    @rule(i=who_idx, t=who_idx)
    def remove_moderator(self, i: int, t: int) -> None:
        actor, target = self.who(i), self.who(t)
        self.run(lambda: self.room.remove_moderator(actor, target))

    @rule(i=who_idx, same=st.integers(min_value=0, max_value=3))
    def set_locked(self, i: int, same: int) -> None:
        actor = self.who(i)
        locked = self.room.locked if same == 0 else not self.room.locked  # mostly a change
        self.run(lambda: self.room.set_locked(actor, locked))

    @rule(i=who_idx, go=st.integers(min_value=0, max_value=2))
    def end(self, i: int, go: int) -> None:
        if go:  # ending is final: keep it rarer than the other commands
            return
        actor = self.who(i)
        self.run(lambda: self.room.end(actor))

    # --------------------------------------------------------------- invariants
    @invariant()
    def members_are_well_formed(self) -> None:
        for user, member in self.room.members.items():
            assert member.user_id == user
            assert isinstance(member.role, Role)
            assert member.name == member.name.strip() and member.name
            if member.mute_forced:
                assert member.muted
            if not member.role.on_stage:
                assert member.muted and not member.mute_forced
            if member.role is Role.HOST:
                assert not member.mute_forced

    @invariant()
    def stage_and_counts(self) -> None:
        room = self.room
        members = list(room.members.values())
        listeners = sum(m.role is Role.LISTENER for m in members)
        assert room.listener_count == listeners
        assert room.stage_count == len(members) - listeners == len(room.stage)
        assert room.stage_count <= room.stage_size
        assert [m.role for m in room.stage] == sorted(
            (m.role for m in room.stage), key=lambda r: -r.rank
        )

    @invariant()
    def queue_and_invites_hold_present_listeners(self) -> None:
        room = self.room
        assert len(set(room.queue)) == len(room.queue)
        for user in room.queue:
            assert room.role_of(user) is Role.LISTENER
        for user in room.invites:
            assert room.role_of(user) is Role.LISTENER
        for i, user in enumerate(room.queue, start=1):
            assert room.position_of(user) == i

    @invariant()
    def banned_and_kicked_are_out(self) -> None:
        room = self.room
        assert not room.bans & room.members.keys()
        assert not room.kicks.keys() & room.members.keys()
        assert not room.kicks.keys() & room.bans

    @invariant()
    def one_host_while_open(self) -> None:
        room = self.room
        hosts = [m for m in room.members.values() if m.role is Role.HOST]
        if room.is_open:
            assert len(hosts) == 1 and room.host is hosts[0]
        else:
            assert room.members == {} and room.queue == {} and room.invites == {}
            assert room.listener_count == 0 and room.host is None

    @invariant()
    def snapshots_agree(self) -> None:
        room = self.room
        for user in USERS:
            snap = room.snapshot_for(user)
            assert snap.version == room.version and snap.queue_version == room.queue_version
            assert snap.queue_length == len(room.queue)
            member = room.members.get(user)
            if member is None:
                assert snap.you is None
                continue
            assert snap.you is not None and snap.you.role is member.role
            assert snap.you.hand_position == room.position_of(user)
            assert snap.you.invited is (user in room.invites)
            if member.role.on_stage:
                assert [q.user_id for q in snap.queue] == list(room.queue)
            else:
                assert snap.queue == () and snap.invited == ()
            assert room.audible(user) is (member.role.on_stage and not member.muted)


RoomMachine.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestRoomMachine = RoomMachine.TestCase
