"""Signed tokens (HS256 JWT): who a user is, and which rooms they host or moderate."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

import jwt

from chatrooms.ids import RoomId, UserId, new_guest_id
from chatrooms.permissions import Grant
from chatrooms.room import MAX_NAME

ALGORITHM = "HS256"
DEFAULT_TTL = 24 * 3600
GUEST_PREFIX = "guest-"


class AuthErrorCode(StrEnum):
    TOKEN_EXPIRED = "token_expired"
    TOKEN_INVALID = "token_invalid"
    TOKEN_REQUIRED = "token_required"


class AuthError(Exception):
    def __init__(self, code: AuthErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Identity:
    user_id: UserId
    name: str
    grants: MappingProxyType[RoomId, Grant] = field(default_factory=lambda: MappingProxyType({}))
    guest: bool = False

    def grant_for(self, room_id: RoomId) -> Grant | None:
        return self.grants.get(room_id)


class TokenService:
    def __init__(self, secret: str) -> None:
        # No configured secret: a random one, so no token from outside this process validates.
        self._secret = secret or secrets.token_urlsafe(32)

    def issue(
        self,
        user_id: str,
        name: str,
        *,
        grants: dict[RoomId, Grant] | None = None,
        ttl: float = DEFAULT_TTL,
        guest: bool = False,
        now: float | None = None,
    ) -> str:
        issued = int(time.time() if now is None else now)
        claims: dict[str, Any] = {
            "sub": user_id,
            "name": name,
            "iat": issued,
            "exp": issued + int(ttl),
        }
        if grants:
            claims["rooms"] = {room: grant.value for room, grant in grants.items()}
        if guest:
            claims["guest"] = True
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def issue_guest(self, name: str | None = None) -> tuple[Identity, str]:
        user_id = new_guest_id()
        name = (name or "").strip()[:MAX_NAME] or f"Guest {user_id[len(GUEST_PREFIX) :][:4]}"
        return Identity(user_id, name, guest=True), self.issue(user_id, name, guest=True)

    def verify(self, token: str) -> Identity:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                options={"require": ["sub", "exp"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthError(AuthErrorCode.TOKEN_EXPIRED, "the token has expired") from exc
        except jwt.InvalidTokenError as exc:
            raise AuthError(AuthErrorCode.TOKEN_INVALID, f"the token is not valid: {exc}") from exc
        sub, name, rooms = claims.get("sub"), claims.get("name", ""), claims.get("rooms", {})
        if not isinstance(sub, str) or not 0 < len(sub) <= MAX_NAME:
            raise AuthError(AuthErrorCode.TOKEN_INVALID, "the token has no valid subject")
        if not isinstance(name, str) or len(name) > MAX_NAME:
            raise AuthError(AuthErrorCode.TOKEN_INVALID, "the token has no valid name")
        if not isinstance(rooms, dict):
            raise AuthError(AuthErrorCode.TOKEN_INVALID, "the token's rooms are not valid")
        grants: dict[RoomId, Grant] = {}
        for room, grant in rooms.items():
            try:
                grants[RoomId(str(room))] = Grant(grant)
            except ValueError as exc:
                raise AuthError(
                    AuthErrorCode.TOKEN_INVALID, f"unknown room grant {grant!r}"
                ) from exc
        return Identity(
            UserId(sub),
            name.strip() or sub,
            MappingProxyType(grants),
            guest=bool(claims.get("guest")),
        )
