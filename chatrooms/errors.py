"""Typed errors of the domain. Each carries a stable code that the wire protocol sends."""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    FORBIDDEN = "forbidden"
    NOT_IN_ROOM = "not_in_room"
    NOT_FOUND = "not_found"
    ROOM_ENDED = "room_ended"
    ROOM_LOCKED = "room_locked"
    BANNED = "banned"
    KICKED = "kicked"
    STAGE_FULL = "stage_full"
    INVALID_TARGET = "invalid_target"
    INVALID_STATE = "invalid_state"
    INVALID_ARGUMENT = "invalid_argument"
    UNAVAILABLE = "unavailable"  # the store cannot take changes now (e.g. Redis is down)


class ChatroomsError(Exception):
    """Base of every domain error: a command that raises one has changed nothing."""

    code: ErrorCode = ErrorCode.INVALID_STATE

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Forbidden(ChatroomsError):
    code = ErrorCode.FORBIDDEN


class NotInRoom(ChatroomsError):
    code = ErrorCode.NOT_IN_ROOM


class RoomNotFound(ChatroomsError):
    code = ErrorCode.NOT_FOUND


class RoomEnded(ChatroomsError):
    code = ErrorCode.ROOM_ENDED


class RoomLocked(ChatroomsError):
    code = ErrorCode.ROOM_LOCKED


class Banned(ChatroomsError):
    code = ErrorCode.BANNED


class KickedCooldown(ChatroomsError):
    code = ErrorCode.KICKED

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StageFull(ChatroomsError):
    code = ErrorCode.STAGE_FULL


class InvalidTarget(ChatroomsError):
    code = ErrorCode.INVALID_TARGET


class InvalidState(ChatroomsError):
    code = ErrorCode.INVALID_STATE


class InvalidArgument(ChatroomsError):
    code = ErrorCode.INVALID_ARGUMENT


class Unavailable(ChatroomsError):
    """Raised by a store that cannot take changes now; the command changed nothing."""

    code = ErrorCode.UNAVAILABLE
