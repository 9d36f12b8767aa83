"""Roles are presets of capabilities; commands check capabilities, never role names."""

from __future__ import annotations

from enum import Flag, IntEnum, StrEnum, auto
from types import MappingProxyType
from typing import Final


class Role(StrEnum):
    HOST = "host"
    MODERATOR = "moderator"
    SPEAKER = "speaker"
    LISTENER = "listener"

    @property
    def rank(self) -> Rank:
        return _RANKS[self]

    @property
    def on_stage(self) -> bool:
        return self is not Role.LISTENER

    def outranks(self, other: Role) -> bool:
        return self.rank > other.rank


class Rank(IntEnum):
    LISTENER = 0
    SPEAKER = 1
    MODERATOR = 2
    HOST = 3


class Capability(Flag):
    LISTEN = auto()
    RAISE_HAND = auto()
    PUBLISH = auto()  # may be heard: on stage
    STEP_DOWN = auto()
    INVITE = auto()  # invite listeners to the stage
    MOVE_TO_AUDIENCE = auto()
    MUTE_OTHERS = auto()
    KICK = auto()
    BAN = auto()
    LOCK = auto()
    MANAGE_MODERATORS = auto()
    END_ROOM = auto()


_LISTENER = Capability.LISTEN | Capability.RAISE_HAND
_SPEAKER = Capability.LISTEN | Capability.PUBLISH | Capability.STEP_DOWN
_MODERATOR = (
    _SPEAKER
    | Capability.INVITE
    | Capability.MOVE_TO_AUDIENCE
    | Capability.MUTE_OTHERS
    | Capability.KICK
    | Capability.BAN
    | Capability.LOCK
)
_HOST = (_MODERATOR | Capability.MANAGE_MODERATORS | Capability.END_ROOM) & ~Capability.STEP_DOWN

ROLE_CAPABILITIES: Final = MappingProxyType(
    {
        Role.LISTENER: _LISTENER,
        Role.SPEAKER: _SPEAKER,
        Role.MODERATOR: _MODERATOR,
        Role.HOST: _HOST,
    }
)

_RANKS: Final = MappingProxyType(
    {
        Role.LISTENER: Rank.LISTENER,
        Role.SPEAKER: Rank.SPEAKER,
        Role.MODERATOR: Rank.MODERATOR,
        Role.HOST: Rank.HOST,
    }
)


def capabilities(role: Role) -> Capability:
    return ROLE_CAPABILITIES[role]


def can(role: Role, capability: Capability) -> bool:
    return capability in ROLE_CAPABILITIES[role]


class Grant(StrEnum):
    """A room grant carried by a signed token: the user takes this role on joining."""

    HOST = "host"
    MODERATOR = "moderator"
