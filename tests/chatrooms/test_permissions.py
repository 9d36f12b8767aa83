"""Roles are presets of capabilities, ordered by rank."""

from __future__ import annotations

import itertools

import pytest

from chatrooms.permissions import (
    ROLE_CAPABILITIES,
    Capability,
    Grant,
    Rank,
    Role,
    can,
    capabilities,
)

C = Capability
ALL_ROLES = list(Role)

EXPECTED = {
    Role.LISTENER: C.LISTEN | C.RAISE_HAND,
    Role.SPEAKER: C.LISTEN | C.PUBLISH | C.STEP_DOWN,
    Role.MODERATOR: C.LISTEN
    | C.PUBLISH
    | C.STEP_DOWN
    | C.INVITE
    | C.MOVE_TO_AUDIENCE
    | C.MUTE_OTHERS
    | C.KICK
    | C.BAN
    | C.LOCK,
    Role.HOST: C.LISTEN
    | C.PUBLISH
    | C.INVITE
    | C.MOVE_TO_AUDIENCE
    | C.MUTE_OTHERS
    | C.KICK
    | C.BAN
    | C.LOCK
    | C.MANAGE_MODERATORS
    | C.END_ROOM,
}


@pytest.mark.parametrize("role", ALL_ROLES)
def test_each_role_is_exactly_its_preset(role: Role) -> None:
    assert capabilities(role) == EXPECTED[role]
    assert ROLE_CAPABILITIES[role] == EXPECTED[role]


@pytest.mark.parametrize(("role", "cap"), list(itertools.product(ALL_ROLES, list(Capability))))
def test_can_matches_the_preset(role: Role, cap: Capability) -> None:
    assert can(role, cap) is (cap in EXPECTED[role])


def test_presets_are_read_only() -> None:
    with pytest.raises(TypeError):
        ROLE_CAPABILITIES[Role.LISTENER] = C.END_ROOM  # type: ignore[index]
    assert not can(Role.LISTENER, C.END_ROOM)


def test_everyone_listens_only_stage_publishes_only_listeners_raise_hands() -> None:
    for role in Role:
        assert can(role, C.LISTEN)
        assert can(role, C.PUBLISH) is role.on_stage
        assert can(role, C.RAISE_HAND) is (role is Role.LISTENER)


def test_host_cannot_step_down_but_other_stage_roles_can() -> None:
    assert not can(Role.HOST, C.STEP_DOWN)
    assert can(Role.MODERATOR, C.STEP_DOWN)
    assert can(Role.SPEAKER, C.STEP_DOWN)
    assert not can(Role.LISTENER, C.STEP_DOWN)


def test_only_host_manages_moderators_and_ends_the_room() -> None:
    for cap in (C.MANAGE_MODERATORS, C.END_ROOM):
        assert [r for r in Role if can(r, cap)] == [Role.HOST]


def test_moderation_powers_belong_to_moderator_and_host() -> None:
    for cap in (C.INVITE, C.MOVE_TO_AUDIENCE, C.MUTE_OTHERS, C.KICK, C.BAN, C.LOCK):
        assert {r for r in Role if can(r, cap)} == {Role.HOST, Role.MODERATOR}


def test_ranks_are_strictly_ordered() -> None:
    order = [Role.LISTENER, Role.SPEAKER, Role.MODERATOR, Role.HOST]
    assert [r.rank for r in order] == [Rank.LISTENER, Rank.SPEAKER, Rank.MODERATOR, Rank.HOST]
    assert [int(r.rank) for r in order] == sorted({int(r.rank) for r in order})


@pytest.mark.parametrize(("a", "b"), list(itertools.product(ALL_ROLES, ALL_ROLES)))
def test_outranks_is_strict(a: Role, b: Role) -> None:
    assert a.outranks(b) is (a.rank > b.rank)
    if a is b:
        assert not a.outranks(b)
    assert not (a.outranks(b) and b.outranks(a))


def test_on_stage() -> None:
    assert {r for r in Role if r.on_stage} == {Role.HOST, Role.MODERATOR, Role.SPEAKER}


def test_wire_values_are_stable() -> None:
    assert [r.value for r in Role] == ["host", "moderator", "speaker", "listener"]
    assert [g.value for g in Grant] == ["host", "moderator"]
