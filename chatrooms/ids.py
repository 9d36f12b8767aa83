"""Identifiers of users and rooms."""

from __future__ import annotations

import secrets
from typing import NewType

UserId = NewType("UserId", str)
RoomId = NewType("RoomId", str)


def new_room_id() -> RoomId:
    """A short, URL-safe, unguessable room id."""
    return RoomId(secrets.token_urlsafe(9))


def new_guest_id() -> UserId:
    return UserId("guest-" + secrets.token_urlsafe(9))
