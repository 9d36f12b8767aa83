"""Every command from every role: allowed roles succeed, every other role gets a typed error
and the room is left exactly as it was."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from chatrooms import errors
from chatrooms.errors import ErrorCode
from chatrooms.events import Event
from chatrooms.ids import UserId
from chatrooms.permissions import Role
from chatrooms.room import Room
from tests.chatrooms.helpers import (
    ACTOR_OF,
    HOST,
    LIS2,
    MOD,
    MOD2,
    OUTSIDER,
    SPK,
    SPK2,
    SPK3,
    T0,
    assert_versions,
    fingerprint,
    populated_room,
)

H, M, S, L = Role.HOST, Role.MODERATOR, Role.SPEAKER, Role.LISTENER
STAFF = frozenset({H, M})


@dataclass(frozen=True)
class Command:
    name: str
    allowed: frozenset[Role]
    run: Callable[[Room, UserId], list[Event]]
    prepare: Callable[[Room, UserId], None] | None = None


def _unmute_self(room: Room, actor: UserId) -> None:
    member = room.members.get(actor)
    if member is not None and member.role.on_stage:
        room.unmute(actor)


COMMANDS = [
    Command("raise_hand", frozenset({L}), lambda r, a: r.raise_hand(a)),
    Command("step_down", frozenset({S, M}), lambda r, a: r.step_down(a)),
    Command("self_mute", frozenset({H, M, S}), lambda r, a: r.mute(a), prepare=_unmute_self),
    Command("self_unmute", frozenset({H, M, S}), lambda r, a: r.unmute(a)),
    Command("invite", STAFF, lambda r, a: r.invite(a, LIS2)),
    Command("dismiss_hand", STAFF, lambda r, a: r.lower_hand(a, LIS2)),
    Command("move_to_audience", STAFF, lambda r, a: r.move_to_audience(a, SPK2)),
    Command("force_mute", STAFF, lambda r, a: r.mute(a, SPK2)),
    Command("lift_mute", STAFF, lambda r, a: r.unmute(a, SPK3)),
    Command("kick", STAFF, lambda r, a: r.kick(a, LIS2, now=T0)),
    Command("ban", STAFF, lambda r, a: r.ban(a, LIS2)),
    Command("ban_absent", STAFF, lambda r, a: r.ban(a, UserId("stranger"))),
    Command("lock", STAFF, lambda r, a: r.set_locked(a, True)),
    Command("add_moderator", frozenset({H}), lambda r, a: r.add_moderator(a, SPK2)),
    Command("remove_moderator", frozenset({H}), lambda r, a: r.remove_moderator(a, MOD2)),
    Command("end", frozenset({H}), lambda r, a: r.end(a)),
]
BY_NAME = {c.name: c for c in COMMANDS}


def _cases(allowed: bool) -> list[tuple[str, Role]]:
    return [
        (c.name, role)
        for c, role in itertools.product(COMMANDS, Role)
        if (role in c.allowed) is allowed
    ]


@pytest.mark.parametrize(("name", "role"), _cases(allowed=False))
def test_forbidden_command_raises_and_changes_nothing(name: str, role: Role) -> None:
    command = BY_NAME[name]
    room = populated_room()
    actor = ACTOR_OF[role]
    if command.prepare:
        command.prepare(room, actor)
    before = fingerprint(room)
    with pytest.raises(errors.Forbidden) as exc:
        command.run(room, actor)
    assert exc.value.code is ErrorCode.FORBIDDEN
    assert isinstance(exc.value, errors.ChatroomsError)
    assert fingerprint(room) == before


@pytest.mark.parametrize(("name", "role"), _cases(allowed=True))
def test_allowed_command_succeeds(name: str, role: Role) -> None:
    """The control group: the same setup works for the roles that may do it."""
    command = BY_NAME[name]
    room = populated_room()
    actor = ACTOR_OF[role]
    if command.prepare:
        command.prepare(room, actor)
    before = fingerprint(room)
    v, q = room.version, room.queue_version
    events = command.run(room, actor)
    assert events
    assert fingerprint(room) != before
    assert_versions((v, q), room, events)


@pytest.mark.parametrize("name", [c.name for c in COMMANDS])
def test_outsider_is_not_in_room(name: str) -> None:
    room = populated_room()
    before = fingerprint(room)
    with pytest.raises(errors.NotInRoom) as exc:
        BY_NAME[name].run(room, OUTSIDER)
    assert exc.value.code is ErrorCode.NOT_IN_ROOM
    assert fingerprint(room) == before


def _prepare_mod2_forced(room: Room) -> None:
    room.mute(HOST, MOD2)


# (actor, command, target): the target has the same or a higher rank than the actor.
RANK_CASES: list[tuple[UserId, str, UserId]] = [
    (actor, cmd, target)
    for actor, targets in ((MOD, (MOD2, HOST)), (SPK, (SPK2, MOD, HOST)))
    for target in targets
    for cmd in (
        "move_to_audience",
        "force_mute",
        "lift_mute",
        "kick",
        "ban",
        "invite",
        "dismiss_hand",
        "add_moderator",
        "remove_moderator",
    )
]

RANK_RUN: dict[str, Callable[[Room, UserId, UserId], list[Event]]] = {
    "move_to_audience": lambda r, a, t: r.move_to_audience(a, t),
    "force_mute": lambda r, a, t: r.mute(a, t),
    "lift_mute": lambda r, a, t: r.unmute(a, t),
    "kick": lambda r, a, t: r.kick(a, t, now=T0),
    "ban": lambda r, a, t: r.ban(a, t),
    "invite": lambda r, a, t: r.invite(a, t),
    "dismiss_hand": lambda r, a, t: r.lower_hand(a, t),
    "add_moderator": lambda r, a, t: r.add_moderator(a, t),
    "remove_moderator": lambda r, a, t: r.remove_moderator(a, t),
}


@pytest.mark.parametrize(("actor", "name", "target"), RANK_CASES)
def test_acting_on_equal_or_higher_rank_is_forbidden(
    actor: UserId, name: str, target: UserId
) -> None:
    room = populated_room()
    _prepare_mod2_forced(room)  # so lifting a mute would otherwise have something to lift
    before = fingerprint(room)
    with pytest.raises(errors.Forbidden) as exc:
        RANK_RUN[name](room, actor, target)
    assert exc.value.code is ErrorCode.FORBIDDEN
    assert fingerprint(room) == before


@pytest.mark.parametrize("name", [n for n in RANK_RUN if n not in ("force_mute", "lift_mute")])
def test_nobody_acts_on_themselves(name: str) -> None:
    room = populated_room()
    before = fingerprint(room)
    for actor in (HOST, MOD):
        with pytest.raises((errors.InvalidTarget, errors.Forbidden, errors.InvalidState)):
            RANK_RUN[name](room, actor, actor)
    assert fingerprint(room) == before


def test_host_acts_on_moderators() -> None:
    """Control for the rank cases: the host outranks a moderator."""
    room = populated_room()
    _prepare_mod2_forced(room)
    room.unmute(HOST, MOD2)
    room.mute(HOST, MOD2)
    room.move_to_audience(HOST, MOD2)
    room.kick(HOST, MOD, now=T0)
    assert room.role_of(MOD2) is Role.LISTENER and MOD not in room.members
    room.ban(HOST, SPK)
    assert SPK in room.bans
