"""Room behaviour: creation, join/leave, the queue, invitations, the stage, moderation."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from chatrooms import errors
from chatrooms.errors import ErrorCode
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
from chatrooms.ids import UserId
from chatrooms.permissions import Grant, Role
from chatrooms.room import MAX_STAGE, Room, RoomStatus
from tests.chatrooms.helpers import (
    HOST,
    LIS,
    LIS2,
    MOD,
    MOD2,
    NAMES,
    OUTSIDER,
    ROOM_ID,
    SPK,
    SPK2,
    SPK3,
    T0,
    assert_versions,
    fingerprint,
    join,
    make_room,
    populated_room,
    promote,
)


def create(**kw: object) -> Room:
    args: dict[str, object] = {
        "room_id": ROOM_ID,
        "host_id": HOST,
        "host_name": "Hana",
        "title": "Talk",
        "now": T0,
    }
    args.update(kw)
    return Room.create(**args)  # type: ignore[arg-type]


def u(i: int) -> UserId:
    return UserId(f"user-{i}")


# --------------------------------------------------------------------- creation
class TestCreate:
    def test_defaults(self) -> None:
        room = create(title="  Talk  ")
        assert room.title == "Talk"
        assert room.stage_size == 10
        assert room.topics == () and room.languages == ()
        assert room.status is RoomStatus.OPEN and room.is_open and not room.locked
        assert room.created_at == T0
        assert room.version == 0 and room.queue_version == 0
        assert room.role_of(HOST) is Role.HOST
        assert room.host is not None and room.host.user_id == HOST
        assert room.listener_count == 0 and room.stage_count == 1
        host = room.members[HOST]
        assert host.muted and not host.mute_forced

    @pytest.mark.parametrize("title", ["", "   ", "x" * 121])
    def test_bad_title(self, title: str) -> None:
        with pytest.raises(errors.InvalidArgument) as exc:
            create(title=title)
        assert exc.value.code is ErrorCode.INVALID_ARGUMENT

    def test_title_limits(self) -> None:
        assert create(title="x" * 120).title == "x" * 120
        assert create(title="x").title == "x"

    @pytest.mark.parametrize("size", [1, 2, 10, 49, 50])
    def test_stage_size_in_range(self, size: int) -> None:
        assert create(stage_size=size).stage_size == size

    @pytest.mark.parametrize("size", [-1, 0, 51, 1000])
    def test_stage_size_out_of_range(self, size: int) -> None:
        with pytest.raises(errors.InvalidArgument):
            create(stage_size=size)

    def test_topics_and_languages_are_cleaned(self) -> None:
        room = create(topics=[" Music ", "music", "Jazz"], languages=("en", "EN", " fr"))
        assert room.topics == ("Music", "Jazz")
        assert room.languages == ("en", "fr")

    def test_tag_limits(self) -> None:
        assert len(create(topics=[f"t{i}" for i in range(5)]).topics) == 5
        assert len(create(languages=[f"l{i}" for i in range(5)]).languages) == 5
        # duplicates do not count towards the limit
        assert len(create(topics=["a", "b", "c", "d", "e", "A", "B"]).topics) == 5
        assert create(topics=["x" * 32]).topics == ("x" * 32,)
        assert create(languages=["x" * 16]).languages == ("x" * 16,)

    @pytest.mark.parametrize(
        "kw",
        [
            {"topics": [f"t{i}" for i in range(6)]},
            {"topics": [""]},
            {"topics": ["  "]},
            {"topics": ["x" * 33]},
            {"languages": [f"l{i}" for i in range(6)]},
            {"languages": ["x" * 17]},
            {"languages": [" "]},
            {"host_name": ""},
            {"host_name": " "},
            {"host_name": "x" * 65},
        ],
    )
    def test_bad_arguments(self, kw: dict[str, object]) -> None:
        with pytest.raises(errors.InvalidArgument):
            create(**kw)

    def test_info_and_snapshot(self) -> None:
        room = populated_room()
        info = room.info()
        assert info.room_id == ROOM_ID and info.stage_size == 10 and info.status == "open"
        assert info.speakers[0] == NAMES[HOST]
        assert set(info.speakers) == {NAMES[x] for x in (HOST, MOD, MOD2, SPK, SPK2, SPK3)}
        assert info.listener_count == 2
        staff = room.snapshot_for(MOD)
        assert [q.user_id for q in staff.queue] == [LIS2] and staff.queue_length == 1
        assert staff.stage[0].user_id == HOST
        assert [m.role for m in staff.stage] == sorted(
            (m.role for m in staff.stage), key=lambda r: -r.rank
        )
        listener = room.snapshot_for(LIS2)
        assert listener.queue == () and listener.queue_length == 1 and listener.invited == ()
        assert listener.you is not None and listener.you.hand_position == 1
        assert room.snapshot_for(OUTSIDER).you is None
        assert room.snapshot_for(None).you is None


# ------------------------------------------------------------------------- join
class TestJoin:
    def test_listener_by_default(self) -> None:
        room = make_room()
        events = join(room, LIS)
        assert room.role_of(LIS) is Role.LISTENER
        assert room.listener_count == 1 and room.stage_count == 1
        assert events == [ListenerJoined(room_id=ROOM_ID, version=0, user_id=LIS, name="Lee")]
        assert (room.version, room.queue_version) == (0, 0)  # audience events bump nothing

    def test_name_is_validated(self) -> None:
        room = make_room()
        before = fingerprint(room)
        with pytest.raises(errors.InvalidArgument):
            room.join(LIS, "  ", now=T0)
        assert fingerprint(room) == before
        room.join(LIS, "  Lee ", now=T0)
        assert room.members[LIS].name == "Lee"

    def test_moderator_grant(self) -> None:
        room = make_room()
        events = join(room, MOD, Grant.MODERATOR)
        assert room.role_of(MOD) is Role.MODERATOR
        assert events == [
            ParticipantJoined(
                room_id=ROOM_ID, version=1, user_id=MOD, name="Mo", role=Role.MODERATOR
            )
        ]
        assert room.members[MOD].muted  # everybody comes on stage muted

    def test_host_grant_takes_the_room_over(self) -> None:
        room = make_room()
        join(room, MOD, Grant.HOST)
        assert room.role_of(MOD) is Role.HOST
        assert room.role_of(HOST) is Role.MODERATOR
        assert [m.user_id for m in room.iter_members() if m.role is Role.HOST] == [MOD]

    def test_rejoin_keeps_role_and_changes_nothing(self) -> None:
        room = populated_room()
        before = fingerprint(room)
        for user in (HOST, MOD, SPK, LIS, LIS2):
            assert room.join(user, "Other Name", now=T0 + 1) == []
            assert room.join(user, "Other", now=T0 + 1, grant=Grant.HOST) == []
        assert fingerprint(room) == before

    def test_locked_room_refuses_without_grant(self) -> None:
        room = make_room()
        room.set_locked(HOST, True)
        before = fingerprint(room)
        with pytest.raises(errors.RoomLocked) as exc:
            join(room, LIS)
        assert exc.value.code is ErrorCode.ROOM_LOCKED
        assert fingerprint(room) == before
        join(room, MOD, Grant.MODERATOR)  # a grant holder still gets in
        assert room.role_of(MOD) is Role.MODERATOR
        room.set_locked(HOST, False)
        join(room, LIS)
        assert room.role_of(LIS) is Role.LISTENER

    def test_banned_is_refused(self) -> None:
        room = make_room()
        join(room, LIS)
        room.ban(HOST, LIS)
        before = fingerprint(room)
        for grant in (None, Grant.MODERATOR, Grant.HOST):
            with pytest.raises(errors.Banned) as exc:
                join(room, LIS, grant, now=T0 + 10**6)
            assert exc.value.code is ErrorCode.BANNED
        assert fingerprint(room) == before

    def test_kick_cooldown_refuses_until_it_elapses(self) -> None:
        room = make_room(kick_cooldown=60.0)
        join(room, LIS)
        room.kick(HOST, LIS, now=T0)
        before = fingerprint(room)
        with pytest.raises(errors.KickedCooldown) as exc:
            join(room, LIS, now=T0 + 20)
        assert exc.value.code is ErrorCode.KICKED
        assert exc.value.retry_after == pytest.approx(40.0)
        with pytest.raises(errors.KickedCooldown):
            join(room, LIS, Grant.MODERATOR, now=T0 + 59.999)
        assert fingerprint(room) == before
        join(room, LIS, now=T0 + 60)
        assert room.role_of(LIS) is Role.LISTENER
        assert LIS not in room.kicks

    def test_lapsed_kick_in_locked_room_changes_nothing(self) -> None:
        """Regression: a refused join used to forget the lapsed cool-down (state changed)."""
        room = make_room(kick_cooldown=60.0)
        join(room, LIS)
        room.kick(HOST, LIS, now=T0)
        room.set_locked(HOST, True)
        before = fingerprint(room)
        with pytest.raises(errors.RoomLocked):
            join(room, LIS, now=T0 + 100)
        assert fingerprint(room) == before
        assert LIS in room.kicks

    @pytest.mark.parametrize("grant", [Grant.MODERATOR, Grant.HOST])
    def test_full_stage_turns_a_grant_holder_into_a_listener(self, grant: Grant) -> None:
        room = make_room(stage_size=2)
        join(room, SPK)
        promote(room, SPK)
        assert room.stage_count == 2
        events = join(room, MOD, grant)
        assert room.role_of(MOD) is Role.LISTENER
        assert room.role_of(HOST) is Role.HOST
        assert [type(e) for e in events] == [ListenerJoined]
        assert room.stage_count == 2

    def test_stage_size_one_host_only(self) -> None:
        room = make_room(stage_size=1)
        join(room, MOD, Grant.MODERATOR)
        assert room.role_of(MOD) is Role.LISTENER
        with pytest.raises(errors.StageFull):
            room.invite(HOST, MOD)


# ------------------------------------------------------------------------ leave
class TestLeave:
    def test_listener_leaves_quietly(self) -> None:
        room = make_room()
        join(room, LIS)
        events = room.leave(LIS, reason=LeaveReason.DISCONNECTED)
        assert events == [
            ListenerLeft(room_id=ROOM_ID, version=0, user_id=LIS, reason=LeaveReason.DISCONNECTED)
        ]
        assert LIS not in room.members and room.listener_count == 0
        assert room.version == 0

    def test_speaker_leaves_publicly(self) -> None:
        room = populated_room()
        v = room.version
        events = room.leave(SPK)
        assert events == [
            ParticipantLeft(
                room_id=ROOM_ID,
                version=v + 1,
                user_id=SPK,
                role=Role.SPEAKER,
                reason=LeaveReason.LEFT,
            )
        ]

    def test_leave_when_not_in_room(self) -> None:
        room = make_room()
        with pytest.raises(errors.NotInRoom) as exc:
            room.leave(OUTSIDER)
        assert exc.value.code is ErrorCode.NOT_IN_ROOM

    @pytest.mark.parametrize(
        "reason", [LeaveReason.KICKED, LeaveReason.BANNED, LeaveReason.ROOM_ENDED]
    )
    def test_leave_reason_reserved_for_moderation(self, reason: LeaveReason) -> None:
        """Regression: leave() with these reasons removed a speaker without any event."""
        room = populated_room()
        before = fingerprint(room)
        with pytest.raises(errors.InvalidArgument):
            room.leave(SPK, reason=reason)
        assert fingerprint(room) == before

    def test_leaving_lowers_the_hand_and_drops_the_invitation(self) -> None:
        room = populated_room()
        room.invite(MOD, LIS2)
        q = room.queue_version
        events = room.leave(LIS2)
        assert [type(e) for e in events] == [HandLowered, InviteWithdrawn, ListenerLeft]
        lowered, withdrawn = events[0], events[1]
        assert isinstance(lowered, HandLowered)
        assert lowered.reason is HandLoweredReason.LEFT and lowered.position == 1
        assert isinstance(withdrawn, InviteWithdrawn) and not withdrawn.declined
        assert room.queue_version == q + 2
        assert LIS2 not in room.queue and LIS2 not in room.invites


# ------------------------------------------------------------------- the queue
class TestQueue:
    def test_fcfs_positions(self) -> None:
        room = make_room()
        for i in range(4):
            join(room, u(i))
        for i in range(4):
            (event,) = room.raise_hand(u(i))
            assert isinstance(event, HandRaised)
            assert event.position == i + 1 and event.user_id == u(i)
            assert event.queue_version == i + 1 and event.version == 0
        assert [room.position_of(u(i)) for i in range(4)] == [1, 2, 3, 4]
        assert list(room.queue) == [u(0), u(1), u(2), u(3)]
        assert room.version == 0

    def test_positions_move_up_when_someone_ahead_leaves(self) -> None:
        room = make_room()
        for i in range(4):
            join(room, u(i))
            room.raise_hand(u(i))
        (lowered,) = room.lower_hand(u(1))
        assert isinstance(lowered, HandLowered)
        assert lowered.position == 2 and lowered.reason is HandLoweredReason.LOWERED
        assert [room.position_of(u(i)) for i in range(4)] == [1, None, 2, 3]
        room.leave(u(0))
        assert [room.position_of(u(i)) for i in (2, 3)] == [1, 2]
        (raised,) = room.raise_hand(u(1))  # back of the queue
        assert isinstance(raised, HandRaised) and raised.position == 3

    def test_raise_twice(self) -> None:
        room = make_room()
        join(room, LIS)
        room.raise_hand(LIS)
        before = fingerprint(room)
        with pytest.raises(errors.InvalidState) as exc:
            room.raise_hand(LIS)
        assert exc.value.code is ErrorCode.INVALID_STATE
        assert fingerprint(room) == before

    def test_lower_when_not_raised(self) -> None:
        room = make_room()
        join(room, LIS)
        with pytest.raises(errors.InvalidState):
            room.lower_hand(LIS)
        with pytest.raises(errors.InvalidState):
            room.lower_hand(LIS, LIS)

    def test_stage_cannot_raise_a_hand(self) -> None:
        room = populated_room()
        for user in (HOST, MOD, SPK):
            with pytest.raises(errors.Forbidden):
                room.raise_hand(user)

    def test_moderator_dismisses_a_hand(self) -> None:
        room = populated_room()
        join(room, u(1))
        room.raise_hand(u(1))
        (event,) = room.lower_hand(MOD, LIS2)
        assert isinstance(event, HandLowered)
        assert event.reason is HandLoweredReason.DISMISSED and event.position == 1
        assert room.position_of(u(1)) == 1
        with pytest.raises(errors.InvalidState):
            room.lower_hand(MOD, LIS2)
        with pytest.raises(errors.InvalidTarget):
            room.lower_hand(MOD, OUTSIDER)

    def test_listener_cannot_dismiss_another_hand(self) -> None:
        room = populated_room()
        before = fingerprint(room)
        with pytest.raises(errors.Forbidden):
            room.lower_hand(LIS, LIS2)
        assert fingerprint(room) == before


# ----------------------------------------------------------------- invitations
class TestInvite:
    def test_invite_from_the_queue_and_accept(self) -> None:
        room = populated_room()
        v, q = room.version, room.queue_version
        (invited,) = room.invite(MOD, LIS2)
        assert invited == SpeakerInvited(
            room_id=ROOM_ID, version=v, queue_version=q + 1, user_id=LIS2, by=MOD
        )
        assert room.invites == {LIS2: MOD}
        assert room.sees_queue(LIS2) and not room.sees_queue(LIS)
        before = (room.version, room.queue_version)
        events = room.accept_invite(LIS2)
        assert_versions(before, room, events)
        assert [type(e) for e in events] == [HandLowered, RoleChanged]
        lowered, changed = events
        assert isinstance(lowered, HandLowered) and lowered.reason is HandLoweredReason.ON_STAGE
        assert changed == RoleChanged(
            room_id=ROOM_ID,
            version=v + 1,
            user_id=LIS2,
            name="Lou",
            role=Role.SPEAKER,
            previous=Role.LISTENER,
            by=MOD,
        )
        assert room.role_of(LIS2) is Role.SPEAKER
        assert LIS2 not in room.queue and LIS2 not in room.invites
        assert room.members[LIS2].muted and not room.members[LIS2].mute_forced
        assert not room.audible(LIS2)
        assert room.listener_count == 1

    def test_invite_any_listener(self) -> None:
        room = populated_room()
        room.invite(HOST, LIS)
        events = room.accept_invite(LIS)
        assert [type(e) for e in events] == [RoleChanged]
        assert room.role_of(LIS) is Role.SPEAKER

    def test_decline(self) -> None:
        room = populated_room()
        room.invite(MOD, LIS)
        (event,) = room.decline_invite(LIS)
        assert isinstance(event, InviteWithdrawn) and event.declined
        assert room.role_of(LIS) is Role.LISTENER and LIS not in room.invites
        with pytest.raises(errors.InvalidState):
            room.decline_invite(LIS)
        with pytest.raises(errors.InvalidState):
            room.accept_invite(LIS)

    def test_decline_keeps_the_hand_raised(self) -> None:
        room = populated_room()
        room.invite(MOD, LIS2)
        room.decline_invite(LIS2)
        assert room.position_of(LIS2) == 1

    def test_invite_twice(self) -> None:
        room = populated_room()
        room.invite(MOD, LIS)
        before = fingerprint(room)
        with pytest.raises(errors.InvalidState):
            room.invite(MOD2, LIS)
        assert fingerprint(room) == before

    @pytest.mark.parametrize("target", [SPK, MOD2, HOST])
    def test_only_listeners_can_be_invited(self, target: UserId) -> None:
        room = populated_room()
        before = fingerprint(room)
        with pytest.raises((errors.InvalidTarget, errors.Forbidden)):
            room.invite(HOST if target != HOST else MOD, target)
        assert fingerprint(room) == before

    def test_invite_speaker_is_invalid_target(self) -> None:
        room = populated_room()
        with pytest.raises(errors.InvalidTarget):
            room.invite(HOST, SPK)
        with pytest.raises(errors.InvalidTarget):
            room.invite(HOST, OUTSIDER)
        with pytest.raises(errors.InvalidTarget):
            room.invite(HOST, HOST)

    def test_stage_full_at_invite(self) -> None:
        room = make_room(stage_size=2)
        join(room, SPK)
        promote(room, SPK)
        join(room, LIS)
        before = fingerprint(room)
        with pytest.raises(errors.StageFull) as exc:
            room.invite(HOST, LIS)
        assert exc.value.code is ErrorCode.STAGE_FULL
        assert fingerprint(room) == before

    def test_stage_full_at_accept(self) -> None:
        room = make_room(stage_size=2)
        join(room, LIS)
        join(room, LIS2)
        room.invite(HOST, LIS)
        room.invite(HOST, LIS2)
        room.accept_invite(LIS)
        before = fingerprint(room)
        with pytest.raises(errors.StageFull):
            room.accept_invite(LIS2)
        assert fingerprint(room) == before
        assert LIS2 in room.invites  # still invited: can accept once a seat frees up
        room.step_down(LIS)
        room.accept_invite(LIS2)
        assert room.role_of(LIS2) is Role.SPEAKER

    def test_accept_without_invitation(self) -> None:
        room = populated_room()
        with pytest.raises(errors.InvalidState):
            room.accept_invite(LIS)
        with pytest.raises(errors.InvalidState):
            room.accept_invite(SPK)
        with pytest.raises(errors.NotInRoom):
            room.accept_invite(OUTSIDER)


# -------------------------------------------------------------------- the stage
class TestStage:
    def test_move_to_audience(self) -> None:
        room = populated_room()
        room.unmute(HOST, SPK3)  # lift the forced mute: it must not follow into the audience
        (event,) = room.move_to_audience(MOD, SPK)
        assert isinstance(event, RoleChanged)
        assert (event.role, event.previous, event.by) == (Role.LISTENER, Role.SPEAKER, MOD)
        assert room.role_of(SPK) is Role.LISTENER
        assert room.listener_count == 3
        assert not room.audible(SPK)

    def test_host_moves_a_moderator_to_audience(self) -> None:
        room = populated_room()
        room.move_to_audience(HOST, MOD)
        assert room.role_of(MOD) is Role.LISTENER

    def test_move_a_listener(self) -> None:
        room = populated_room()
        before = fingerprint(room)
        with pytest.raises(errors.InvalidTarget):
            room.move_to_audience(MOD, LIS)
        assert fingerprint(room) == before

    def test_forced_mute_is_cleared_on_leaving_the_stage(self) -> None:
        room = populated_room()
        assert room.members[SPK3].mute_forced
        room.move_to_audience(HOST, SPK3)
        assert room.members[SPK3].muted and not room.members[SPK3].mute_forced

    @pytest.mark.parametrize("user", [SPK, MOD])
    def test_step_down(self, user: UserId) -> None:
        room = populated_room()
        room.unmute(user)
        previous = room.role_of(user)
        (event,) = room.step_down(user)
        assert isinstance(event, RoleChanged)
        assert (event.role, event.previous, event.by) == (Role.LISTENER, previous, user)
        member = room.members[user]
        assert member.role is Role.LISTENER and member.muted
        # back in the audience, they may raise a hand again
        room.raise_hand(user)
        assert room.position_of(user) == 2

    def test_host_cannot_step_down(self) -> None:
        room = populated_room()
        before = fingerprint(room)
        with pytest.raises(errors.Forbidden):
            room.step_down(HOST)
        assert fingerprint(room) == before


# --------------------------------------------------------------------------- mute
class TestMute:
    def test_self_mute_and_unmute(self) -> None:
        room = populated_room()
        assert room.members[SPK].muted and not room.audible(SPK)
        (event,) = room.unmute(SPK)
        assert isinstance(event, MuteChanged)
        assert (event.muted, event.forced, event.by) == (False, False, SPK)
        assert room.audible(SPK)
        with pytest.raises(errors.InvalidState):
            room.unmute(SPK)
        (event,) = room.mute(SPK)
        assert isinstance(event, MuteChanged) and event.muted and not event.forced
        with pytest.raises(errors.InvalidState):
            room.mute(SPK, SPK)
        room.unmute(SPK, SPK)  # explicit self target is the same as no target
        assert room.audible(SPK)

    def test_forced_mute_cannot_be_undone_by_the_speaker(self) -> None:
        room = populated_room()
        room.unmute(SPK)
        (event,) = room.mute(MOD, SPK)
        assert isinstance(event, MuteChanged)
        assert (event.user_id, event.muted, event.forced, event.by) == (SPK, True, True, MOD)
        assert not room.audible(SPK)
        before = fingerprint(room)
        with pytest.raises(errors.Forbidden):
            room.unmute(SPK)
        assert fingerprint(room) == before
        # muting yourself again is pointless but the speaker is muted already
        with pytest.raises(errors.InvalidState):
            room.mute(SPK)

    def test_moderator_lifts_but_never_opens_a_mic(self) -> None:
        room = populated_room()
        room.mute(MOD, SPK)
        with pytest.raises(errors.InvalidState):
            room.mute(MOD2, SPK)  # already force-muted
        (event,) = room.unmute(MOD2, SPK)
        assert isinstance(event, MuteChanged)
        assert (event.muted, event.forced) == (True, False)
        member = room.members[SPK]
        assert member.muted and not member.mute_forced
        assert not room.audible(SPK)
        with pytest.raises(errors.InvalidState):
            room.unmute(MOD, SPK)  # nothing to lift; a moderator cannot open the mic
        room.unmute(SPK)
        assert room.audible(SPK)

    def test_force_mute_a_self_muted_speaker(self) -> None:
        room = populated_room()
        assert room.members[SPK].muted and not room.members[SPK].mute_forced
        room.mute(MOD, SPK)
        assert room.members[SPK].mute_forced

    def test_force_mute_a_listener(self) -> None:
        room = populated_room()
        with pytest.raises(errors.InvalidTarget):
            room.mute(MOD, LIS)
        with pytest.raises(errors.InvalidState):
            room.unmute(MOD, LIS)

    def test_listener_has_no_mic(self) -> None:
        room = populated_room()
        with pytest.raises(errors.Forbidden):
            room.mute(LIS)
        with pytest.raises(errors.Forbidden):
            room.unmute(LIS)


# ------------------------------------------------------------------ moderation
class TestModeration:
    def test_kick(self) -> None:
        room = populated_room()
        v, q = room.version, room.queue_version
        events = room.kick(MOD, LIS2, now=T0 + 5)
        assert events[0] == ParticipantKicked(
            room_id=ROOM_ID,
            version=v + 1,
            user_id=LIS2,
            role=Role.LISTENER,
            by=MOD,
            until=T0 + 5 + 300.0,
        )
        assert [type(e) for e in events] == [ParticipantKicked, HandLowered]
        assert room.queue_version == q + 1
        assert LIS2 not in room.members and LIS2 not in room.queue
        assert room.kicks[LIS2] == T0 + 305.0
        assert room.listener_count == 1

    def test_kick_a_speaker(self) -> None:
        room = populated_room()
        events = room.kick(MOD, SPK, now=T0)
        assert [type(e) for e in events] == [ParticipantKicked]
        assert SPK not in room.members and room.stage_count == 5

    def test_kick_not_in_room(self) -> None:
        room = populated_room()
        with pytest.raises(errors.InvalidTarget):
            room.kick(MOD, OUTSIDER, now=T0)
        with pytest.raises(errors.InvalidTarget):
            room.kick(MOD, MOD, now=T0)

    def test_ban_present(self) -> None:
        room = populated_room()
        events = room.ban(MOD, SPK)
        assert isinstance(events[0], ParticipantBanned)
        assert events[0].role is Role.SPEAKER and events[0].by == MOD
        assert SPK not in room.members and SPK in room.bans
        with pytest.raises(errors.InvalidState):
            room.ban(MOD, SPK)

    def test_ban_absent(self) -> None:
        room = populated_room()
        (event,) = room.ban(MOD, OUTSIDER)
        assert isinstance(event, ParticipantBanned) and event.role is None
        assert OUTSIDER in room.bans
        with pytest.raises(errors.Banned):
            join(room, OUTSIDER)

    def test_ban_a_kicked_user_replaces_the_cooldown(self) -> None:
        room = populated_room()
        room.kick(MOD, LIS, now=T0)
        room.ban(MOD, LIS)
        assert LIS not in room.kicks and LIS in room.bans
        with pytest.raises(errors.Banned):
            join(room, LIS, now=T0 + 10**6)

    def test_ban_self(self) -> None:
        room = populated_room()
        with pytest.raises(errors.InvalidTarget):
            room.ban(MOD, MOD)

    def test_add_moderator_from_speaker_keeps_mute_state(self) -> None:
        room = populated_room()
        room.unmute(SPK)
        (event,) = room.add_moderator(HOST, SPK)
        assert isinstance(event, RoleChanged)
        assert (event.role, event.previous, event.by) == (Role.MODERATOR, Role.SPEAKER, HOST)
        assert room.role_of(SPK) is Role.MODERATOR and room.audible(SPK)
        room.add_moderator(HOST, SPK3)
        assert room.members[SPK3].mute_forced
        with pytest.raises(errors.InvalidState):
            room.add_moderator(HOST, SPK)

    def test_add_moderator_from_audience(self) -> None:
        room = populated_room()
        room.invite(HOST, LIS2)
        events = room.add_moderator(HOST, LIS2)
        assert [type(e) for e in events] == [HandLowered, InviteWithdrawn, RoleChanged]
        assert room.role_of(LIS2) is Role.MODERATOR
        assert LIS2 not in room.queue and LIS2 not in room.invites
        assert room.members[LIS2].muted and room.listener_count == 1

    def test_add_moderator_from_audience_on_full_stage(self) -> None:
        room = make_room(stage_size=1)
        join(room, LIS)
        before = fingerprint(room)
        with pytest.raises(errors.StageFull):
            room.add_moderator(HOST, LIS)
        assert fingerprint(room) == before

    def test_remove_moderator(self) -> None:
        room = populated_room()
        room.unmute(MOD)
        (event,) = room.remove_moderator(HOST, MOD)
        assert isinstance(event, RoleChanged)
        assert (event.role, event.previous) == (Role.SPEAKER, Role.MODERATOR)
        assert room.role_of(MOD) is Role.SPEAKER and room.audible(MOD)
        with pytest.raises(errors.InvalidTarget):
            room.remove_moderator(HOST, MOD)

    def test_lock_unlock(self) -> None:
        room = populated_room()
        v = room.version
        (event,) = room.set_locked(MOD, True)
        assert event == RoomLockChanged(room_id=ROOM_ID, version=v + 1, locked=True, by=MOD)
        assert room.locked and room.info().locked
        with pytest.raises(errors.InvalidState):
            room.set_locked(MOD2, True)
        room.set_locked(HOST, False)
        assert not room.locked
        with pytest.raises(errors.InvalidState):
            room.set_locked(HOST, False)

    def test_end(self) -> None:
        room = populated_room()
        v = room.version
        events = room.end(HOST)
        assert events == [
            RoomEndedEvent(room_id=ROOM_ID, version=v + 1, by=HOST, reason=EndReason.ENDED_BY_HOST)
        ]
        assert room.status is RoomStatus.ENDED and not room.is_open
        assert room.members == {} and room.queue == {} and room.invites == {}
        assert room.listener_count == 0 and room.host is None
        assert room.info().status == "ended"


# ------------------------------------------------------------------ hand-over
class TestHandOver:
    def test_oldest_moderator_becomes_host(self) -> None:
        room = make_room()
        join(room, MOD2)
        promote(room, MOD2)
        join(room, MOD, Grant.MODERATOR)  # moderator first
        room.add_moderator(HOST, MOD2)  # moderator second, though on stage earlier
        v = room.version
        events = room.leave(HOST)
        assert [type(e) for e in events] == [ParticipantLeft, RoleChanged]
        handed = events[1]
        assert handed == RoleChanged(
            room_id=ROOM_ID,
            version=v + 2,
            user_id=MOD,
            name="Mo",
            role=Role.HOST,
            previous=Role.MODERATOR,
            by=None,
        )
        assert room.role_of(MOD) is Role.HOST and room.role_of(MOD2) is Role.MODERATOR

    def test_oldest_speaker_when_no_moderator(self) -> None:
        room = make_room()
        for user in (SPK2, SPK, SPK3):
            join(room, user)
        for user in (SPK, SPK2, SPK3):
            promote(room, user)
        join(room, LIS)
        room.leave(HOST, reason=LeaveReason.DISCONNECTED)
        assert room.role_of(SPK) is Role.HOST
        assert room.role_of(SPK2) is Role.SPEAKER and room.is_open

    def test_forced_mute_is_lifted_for_the_new_host(self) -> None:
        room = make_room()
        join(room, SPK)
        promote(room, SPK)
        room.mute(HOST, SPK)
        room.leave(HOST)
        member = room.members[SPK]
        assert member.role is Role.HOST and not member.mute_forced and member.muted
        room.unmute(SPK)
        assert room.audible(SPK)

    def test_room_ends_with_nobody_on_stage(self) -> None:
        room = make_room()
        join(room, LIS)
        room.raise_hand(LIS)
        events = room.leave(HOST)
        assert [type(e) for e in events] == [ParticipantLeft, RoomEndedEvent]
        ended = events[-1]
        assert isinstance(ended, RoomEndedEvent)
        assert ended.reason is EndReason.NO_HOST and ended.by is None
        assert room.status is RoomStatus.ENDED and room.members == {} and room.queue == {}

    def test_owner_with_host_grant_takes_the_room_back(self) -> None:
        room = populated_room()
        room.leave(HOST)
        assert room.role_of(MOD) is Role.HOST
        v = room.version
        events = join(room, HOST, Grant.HOST)
        assert events == [
            RoleChanged(
                room_id=ROOM_ID,
                version=v + 1,
                user_id=MOD,
                name="Mo",
                role=Role.MODERATOR,
                previous=Role.HOST,
                by=HOST,
            ),
            ParticipantJoined(
                room_id=ROOM_ID, version=v + 2, user_id=HOST, name="Hana", role=Role.HOST
            ),
        ]
        assert room.role_of(HOST) is Role.HOST and room.role_of(MOD) is Role.MODERATOR
        assert sum(m.role is Role.HOST for m in room.iter_members()) == 1


# ------------------------------------------------------------------- ended room
ENDED_COMMANDS = {
    "join": lambda r: r.join(LIS2, "Lou", now=T0),
    "join_grant": lambda r: r.join(HOST, "Hana", now=T0, grant=Grant.HOST),
    "leave": lambda r: r.leave(HOST),
    "raise_hand": lambda r: r.raise_hand(LIS),
    "lower_hand": lambda r: r.lower_hand(LIS),
    "dismiss": lambda r: r.lower_hand(HOST, LIS),
    "invite": lambda r: r.invite(HOST, LIS),
    "accept": lambda r: r.accept_invite(LIS),
    "decline": lambda r: r.decline_invite(LIS),
    "move_to_audience": lambda r: r.move_to_audience(HOST, SPK),
    "step_down": lambda r: r.step_down(SPK),
    "mute": lambda r: r.mute(SPK),
    "force_mute": lambda r: r.mute(HOST, SPK),
    "unmute": lambda r: r.unmute(SPK),
    "lift_mute": lambda r: r.unmute(HOST, SPK),
    "kick": lambda r: r.kick(HOST, LIS, now=T0),
    "ban": lambda r: r.ban(HOST, OUTSIDER),
    "add_moderator": lambda r: r.add_moderator(HOST, SPK),
    "remove_moderator": lambda r: r.remove_moderator(HOST, MOD),
    "lock": lambda r: r.set_locked(HOST, True),
    "end": lambda r: r.end(HOST),
}


@pytest.mark.parametrize("name", list(ENDED_COMMANDS))
def test_commands_in_an_ended_room_raise_room_ended(name: str) -> None:
    room = populated_room()
    room.invite(HOST, LIS)
    room.end(HOST)
    before = fingerprint(room)
    with pytest.raises(errors.RoomEnded) as exc:
        ENDED_COMMANDS[name](room)
    assert exc.value.code is ErrorCode.ROOM_ENDED
    assert fingerprint(room) == before


# ----------------------------------------------------------------- versions
def test_versions_follow_visibility_over_a_session() -> None:
    room = make_room()
    seen_v: list[int] = []
    seen_q: list[int] = []
    script: list[Callable[[], list[Event]]] = [
        lambda: join(room, MOD, Grant.MODERATOR),
        lambda: join(room, LIS),
        lambda: join(room, LIS2),
        lambda: room.raise_hand(LIS),
        lambda: room.raise_hand(LIS2),
        lambda: room.invite(MOD, LIS),
        lambda: room.accept_invite(LIS),
        lambda: room.unmute(LIS),
        lambda: room.mute(MOD, LIS),
        lambda: room.unmute(HOST, LIS),
        lambda: room.invite(MOD, LIS2),
        lambda: room.decline_invite(LIS2),
        lambda: room.lower_hand(LIS2),
        lambda: room.set_locked(HOST, True),
        lambda: room.kick(MOD, LIS2, now=T0),
        lambda: room.ban(MOD, OUTSIDER),
        lambda: room.add_moderator(HOST, LIS),
        lambda: room.remove_moderator(HOST, LIS),
        lambda: room.step_down(LIS),
        lambda: room.leave(LIS),
        lambda: room.leave(HOST),
        lambda: room.end(MOD),
    ]
    for step in script:
        before = (room.version, room.queue_version)
        events = step()
        assert events, step
        assert_versions(before, room, events)
        for e in events:
            if e.visibility is Visibility.PUBLIC:
                seen_v.append(e.version)
            elif isinstance(e, QueueEvent):
                seen_q.append(e.queue_version)
    assert seen_v == list(range(1, len(seen_v) + 1))
    assert seen_q == list(range(1, len(seen_q) + 1))
    assert room.status is RoomStatus.ENDED


def test_event_classes_have_expected_visibility() -> None:
    public: list[type[Event]] = [
        ParticipantJoined,
        ParticipantLeft,
        RoleChanged,
        MuteChanged,
        ParticipantKicked,
        ParticipantBanned,
        RoomLockChanged,
        RoomEndedEvent,
    ]
    queue: list[type[Event]] = [HandRaised, HandLowered, SpeakerInvited, InviteWithdrawn]
    audience: list[type[Event]] = [ListenerJoined, ListenerLeft]
    assert all(c.visibility is Visibility.PUBLIC for c in public)
    assert all(c.visibility is Visibility.QUEUE for c in queue)
    assert all(c.visibility is Visibility.AUDIENCE for c in audience)


def test_events_are_frozen() -> None:
    room = make_room()
    (event,) = join(room, LIS)
    assert isinstance(event, ListenerJoined)
    with pytest.raises(AttributeError):
        event.user_id = HOST  # type: ignore[misc]


def test_max_stage_is_reachable() -> None:
    room = make_room(stage_size=MAX_STAGE)
    for i in range(MAX_STAGE - 1):
        join(room, u(i), Grant.MODERATOR)
    assert room.stage_count == MAX_STAGE
    join(room, u(100), Grant.MODERATOR)
    assert room.role_of(u(100)) is Role.LISTENER
