"""The wire schema: every client command and server message, in one place.

Messages are objects with a ``type`` tag (a tagged union). The same definitions are
sent as msgpack in binary WebSocket frames and as JSON in text frames; the codec
validates inbound commands from the annotations below, and ``docs/PROTOCOL.md`` is
checked against :func:`describe` by a test.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import StrEnum
from types import MappingProxyType
from typing import Annotated, ClassVar, Final

from chatrooms import events as ev
from chatrooms.errors import ErrorCode
from chatrooms.room import MAX_LANGUAGE, MAX_LANGUAGES, MAX_NAME, MAX_TITLE, MAX_TOPIC, MAX_TOPICS
from chatrooms.snapshot import RoomSnapshot
from signaling.auth import AuthErrorCode

PROTOCOL_VERSION: Final = 1


@dataclass(frozen=True, slots=True)
class MaxLen:
    """Longest string (characters) or sequence (items) accepted."""

    n: int


@dataclass(frozen=True, slots=True)
class Range:
    lo: int
    hi: int


MAX_SDP = 60_000  # characters; a browser offer with a few audio m-lines is ~5-10 KB
MAX_CURSOR = 200  # characters of an audience listing's cursor
MAX_AUDIENCE_PAGE = 100  # listeners in one `audience` reply
DEFAULT_AUDIENCE_PAGE = 50
UserIdField = Annotated[str, MaxLen(MAX_NAME)]
RoomIdField = Annotated[str, MaxLen(64)]
RequestId = Annotated[int, Range(0, 2**31 - 1)]


class ProtocolErrorCode(StrEnum):
    MALFORMED = "malformed"  # not msgpack / JSON
    INVALID_MESSAGE = "invalid_message"  # not an object with a string "type"
    UNKNOWN_TYPE = "unknown_type"
    INVALID_FIELD = "invalid_field"  # missing, unknown or wrongly typed field, or too long
    UNSUPPORTED_VERSION = "unsupported_version"
    NOT_JOINED = "not_joined"  # the first command must be join
    ALREADY_JOINED = "already_joined"
    RATE_LIMITED = "rate_limited"
    INVALID_SDP = "invalid_sdp"  # an offer the SFU cannot answer
    INVALID_CANDIDATE = "invalid_candidate"
    INTERNAL = "internal"


# Every code an `error` or `bye` message can carry.
ERROR_CODES: Final = (
    tuple(c.value for c in ProtocolErrorCode)
    + tuple(c.value for c in ErrorCode)
    + tuple(c.value for c in AuthErrorCode)
)


class ByeReason(StrEnum):
    """Why the server closes a connection (sent in `bye` just before the close)."""

    KICKED = "kicked"
    BANNED = "banned"
    ROOM_ENDED = "room_ended"
    LEFT = "left"
    REPLACED = "replaced"  # the same user connected again elsewhere
    SLOW_CONSUMER = "slow_consumer"
    SHUTDOWN = "shutdown"
    JOIN_REFUSED = "join_refused"
    JOIN_TIMEOUT = "join_timeout"


# WebSocket close codes for each reason (4000-4999 are the application's).
CLOSE_CODES: Final = MappingProxyType(
    {
        ByeReason.KICKED: 4001,
        ByeReason.BANNED: 4002,
        ByeReason.ROOM_ENDED: 4003,
        ByeReason.LEFT: 1000,
        ByeReason.REPLACED: 4009,
        ByeReason.SLOW_CONSUMER: 4008,
        ByeReason.SHUTDOWN: 1001,
        ByeReason.JOIN_REFUSED: 4000,
        ByeReason.JOIN_TIMEOUT: 4000,
    }
)


# --------------------------------------------------------------------------- commands
@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    """Client to server. ``id``, when given, is echoed by the `ack` or `error` reply."""

    type: ClassVar[str]
    doc: ClassVar[str]
    id: RequestId | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Join(Command):
    type: ClassVar[str] = "join"
    doc: ClassVar[str] = (
        "Must be the first frame. Enter a room; the reply is `joined` with a snapshot. "
        "Without a token (guest mode only) the server makes a guest identity."
    )
    room_id: RoomIdField
    token: Annotated[str, MaxLen(4096)] | None = None
    name: Annotated[str, MaxLen(MAX_NAME)] | None = None
    protocol: Annotated[int, Range(1, 1000)] = PROTOCOL_VERSION


@dataclass(frozen=True, slots=True, kw_only=True)
class Leave(Command):
    type: ClassVar[str] = "leave"
    doc: ClassVar[str] = "Leave the room for good (the server then closes with `bye`)."


@dataclass(frozen=True, slots=True, kw_only=True)
class Resync(Command):
    type: ClassVar[str] = "resync"
    doc: ClassVar[str] = "Ask for a fresh `snapshot` (after seeing a version gap)."


@dataclass(frozen=True, slots=True, kw_only=True)
class Ping(Command):
    type: ClassVar[str] = "ping"
    doc: ClassVar[str] = "Answered by `pong` with the same id."


@dataclass(frozen=True, slots=True, kw_only=True)
class RaiseHand(Command):
    type: ClassVar[str] = "raise_hand"
    doc: ClassVar[str] = "Join the speaker queue (listeners)."


@dataclass(frozen=True, slots=True, kw_only=True)
class LowerHand(Command):
    type: ClassVar[str] = "lower_hand"
    doc: ClassVar[str] = "Leave the queue; with `user_id`, a moderator dismisses a hand."
    user_id: UserIdField | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Invite(Command):
    type: ClassVar[str] = "invite"
    doc: ClassVar[str] = "Invite a listener (in the queue or not) to the stage (moderators)."
    user_id: UserIdField


@dataclass(frozen=True, slots=True, kw_only=True)
class AcceptInvite(Command):
    type: ClassVar[str] = "accept_invite"
    doc: ClassVar[str] = "Come on stage after an invitation."


@dataclass(frozen=True, slots=True, kw_only=True)
class DeclineInvite(Command):
    type: ClassVar[str] = "decline_invite"
    doc: ClassVar[str] = "Say no to an invitation."


@dataclass(frozen=True, slots=True, kw_only=True)
class MoveToAudience(Command):
    type: ClassVar[str] = "move_to_audience"
    doc: ClassVar[str] = "Move a speaker (or, by the host, a moderator) back to the audience."
    user_id: UserIdField


@dataclass(frozen=True, slots=True, kw_only=True)
class StepDown(Command):
    type: ClassVar[str] = "step_down"
    doc: ClassVar[str] = "Leave the stage yourself and become a listener."


@dataclass(frozen=True, slots=True, kw_only=True)
class Mute(Command):
    type: ClassVar[str] = "mute"
    doc: ClassVar[str] = (
        "Mute yourself; with `user_id`, a moderator force-mutes a speaker, "
        "who cannot unmute until a moderator allows it."
    )
    user_id: UserIdField | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Unmute(Command):
    type: ClassVar[str] = "unmute"
    doc: ClassVar[str] = (
        "Unmute yourself; with `user_id`, a moderator lifts a forced mute "
        "(the speaker then unmutes themselves)."
    )
    user_id: UserIdField | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Kick(Command):
    type: ClassVar[str] = "kick"
    doc: ClassVar[str] = "Remove someone; they may rejoin after the room's kick cool-down."
    user_id: UserIdField


@dataclass(frozen=True, slots=True, kw_only=True)
class Ban(Command):
    type: ClassVar[str] = "ban"
    doc: ClassVar[str] = "Remove someone (or keep them out) for the room's lifetime."
    user_id: UserIdField


@dataclass(frozen=True, slots=True, kw_only=True)
class AddModerator(Command):
    type: ClassVar[str] = "add_moderator"
    doc: ClassVar[str] = "Make a speaker (or a listener, if the stage has room) a moderator (host)."
    user_id: UserIdField


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoveModerator(Command):
    type: ClassVar[str] = "remove_moderator"
    doc: ClassVar[str] = "Make a moderator a plain speaker again (host)."
    user_id: UserIdField


@dataclass(frozen=True, slots=True, kw_only=True)
class Lock(Command):
    type: ClassVar[str] = "lock"
    doc: ClassVar[str] = "Refuse new joins (holders of a room grant still get in)."


@dataclass(frozen=True, slots=True, kw_only=True)
class Unlock(Command):
    type: ClassVar[str] = "unlock"
    doc: ClassVar[str] = "Accept joins again."


@dataclass(frozen=True, slots=True, kw_only=True)
class EndRoom(Command):
    type: ClassVar[str] = "end_room"
    doc: ClassVar[str] = "End the room for everyone (host)."


@dataclass(frozen=True, slots=True, kw_only=True)
class RtcOffer(Command):
    type: ClassVar[str] = "rtc_offer"
    doc: ClassVar[str] = (
        "An SDP offer for this participant's one peer connection: first with K "
        "(`joined.media.audio_slots`) recvonly audio transceivers; on stage, again with one "
        "sendonly audio transceiver added. Answered by `rtc_answer`."
    )
    sdp: Annotated[str, MaxLen(MAX_SDP)]


@dataclass(frozen=True, slots=True, kw_only=True)
class RtcCandidate(Command):
    type: ClassVar[str] = "rtc_candidate"
    doc: ClassVar[str] = (
        "A trickled ICE candidate of the client (RTCIceCandidateInit); an empty "
        "`candidate` means the end of candidates."
    )
    candidate: Annotated[str, MaxLen(1024)]
    sdp_mid: Annotated[str, MaxLen(64)] | None = None
    sdp_mline_index: Annotated[int, Range(0, 64)] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ListAudience(Command):
    type: ClassVar[str] = "list_audience"
    doc: ClassVar[str] = (
        "One page of the room's listeners (moderators and host), answered by `audience`. "
        "Start without `cursor`; pass each reply's `next_cursor` for the next page."
    )
    cursor: Annotated[str, MaxLen(MAX_CURSOR)] | None = None
    limit: Annotated[int, Range(1, MAX_AUDIENCE_PAGE)] = DEFAULT_AUDIENCE_PAGE


COMMANDS: Final[MappingProxyType[str, type[Command]]] = MappingProxyType(
    {
        cls.type: cls
        for cls in (
            Join,
            Leave,
            Resync,
            Ping,
            RaiseHand,
            LowerHand,
            Invite,
            AcceptInvite,
            DeclineInvite,
            MoveToAudience,
            StepDown,
            Mute,
            Unmute,
            Kick,
            Ban,
            AddModerator,
            RemoveModerator,
            Lock,
            Unlock,
            EndRoom,
            RtcOffer,
            RtcCandidate,
            ListAudience,
        )
    }
)


# --------------------------------------------------------------------- server messages
@dataclass(frozen=True, slots=True, kw_only=True)
class ServerMessage:
    type: ClassVar[str]
    doc: ClassVar[str]
    coalescible: ClassVar[bool] = False  # a newer one replaces an unsent older one


@dataclass(frozen=True, slots=True, kw_only=True)
class You:
    user_id: str
    name: str
    guest: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class IceServerConfig:
    """One RTCIceServer for the browser."""

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaConfig:
    """How to set up the peer connection."""

    audio_slots: int
    ice_servers: tuple[IceServerConfig, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Joined(ServerMessage):
    type: ClassVar[str] = "joined"
    doc: ClassVar[str] = (
        "The reply to `join`: who you are, the room as of `snapshot.version`, and for a "
        "guest the token to rejoin with the same identity."
    )
    protocol: int
    you: You
    snapshot: RoomSnapshot
    token: str | None
    media: MediaConfig


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot(ServerMessage):
    type: ClassVar[str] = "snapshot"
    doc: ClassVar[str] = (
        "The whole room again: after `resync`, after your role changed (the stage sees the "
        "queue), or when the server itself resynchronised. Replaces all state."
    )
    snapshot: RoomSnapshot


@dataclass(frozen=True, slots=True, kw_only=True)
class Ack(ServerMessage):
    type: ClassVar[str] = "ack"
    doc: ClassVar[str] = "A command with an `id` was carried out."
    id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Error(ServerMessage):
    type: ClassVar[str] = "error"
    doc: ClassVar[str] = (
        "A command was refused and changed nothing; the connection stays open. "
        "`id` echoes the command's id when it had one."
    )
    code: str
    message: str
    id: int | None
    retry_after: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Pong(ServerMessage):
    type: ClassVar[str] = "pong"
    doc: ClassVar[str] = "The reply to `ping`."
    id: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomStats(ServerMessage):
    type: ClassVar[str] = "room_stats"
    doc: ClassVar[str] = (
        "Listener count and queue length, sent at most once a second and only when "
        "they changed; coalescible."
    )
    coalescible: ClassVar[bool] = True
    listeners: int
    queue_length: int
    version: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Bye(ServerMessage):
    type: ClassVar[str] = "bye"
    doc: ClassVar[str] = "The server is about to close this connection, and why."
    reason: str
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RtcAnswer(ServerMessage):
    type: ClassVar[str] = "rtc_answer"
    doc: ClassVar[str] = (
        "The SFU's SDP answer to `rtc_offer` (`id` echoes the offer's). It carries all "
        "server candidates: the server does not trickle."
    )
    id: int | None
    sdp: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RtcClosed(ServerMessage):
    type: ClassVar[str] = "rtc_closed"
    doc: ClassVar[str] = (
        "The server closed this participant's peer connection (`reason`: failed, silent, "
        "connect_timeout, peer_left, replaced, closed, shutdown). Offer a new one to go on."
    )
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ActiveSpeakersMessage(ServerMessage):
    type: ClassVar[str] = "active_speakers"
    doc: ClassVar[str] = (
        "Who is talking now, loudest first (at most 4 updates a second); coalescible."
    )
    coalescible: ClassVar[bool] = True
    user_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class AudienceMember:
    """One listener in an `audience` page."""

    user_id: str
    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Audience(ServerMessage):
    type: ClassVar[str] = "audience"
    doc: ClassVar[str] = (
        "The reply to `list_audience`: up to `limit` listeners, and the cursor of the next "
        "page (null: this was the last)."
    )
    id: int | None
    users: tuple[AudienceMember, ...]
    next_cursor: str | None
    total: int


SERVER_MESSAGES: Final[MappingProxyType[str, type[ServerMessage]]] = MappingProxyType(
    {
        cls.type: cls
        for cls in (
            Joined,
            Snapshot,
            Ack,
            Error,
            Pong,
            RoomStats,
            Bye,
            RtcAnswer,
            RtcClosed,
            ActiveSpeakersMessage,
            Audience,
        )
    }
)

# Room events go on the wire as they are, under these type tags.
EVENT_TYPES: Final[MappingProxyType[type[ev.Event], str]] = MappingProxyType(
    {
        ev.ParticipantJoined: "participant_joined",
        ev.ParticipantLeft: "participant_left",
        ev.RoleChanged: "role_changed",
        ev.MuteChanged: "mute_changed",
        ev.ParticipantKicked: "participant_kicked",
        ev.ParticipantBanned: "participant_banned",
        ev.RoomLockChanged: "room_lock_changed",
        ev.RoomEndedEvent: "room_ended",
        ev.HandRaised: "hand_raised",
        ev.HandLowered: "hand_lowered",
        ev.SpeakerInvited: "speaker_invited",
        ev.InviteWithdrawn: "invite_withdrawn",
    }
)

EVENT_DOCS: Final = MappingProxyType(
    {
        "participant_joined": "Somebody joined straight onto the stage (a room grant).",
        "participant_left": "A stage member left (`reason`: left or disconnected).",
        "role_changed": "A role changed: invited on stage, moved back, moderator, new host.",
        "mute_changed": "A speaker was muted or unmuted; `forced` when by a moderator.",
        "participant_kicked": "Someone was removed until `until` (seconds since the epoch).",
        "participant_banned": "Someone was banned for the room's lifetime.",
        "room_lock_changed": "The room was locked or unlocked.",
        "room_ended": "The room has ended; the server closes every connection.",
        "hand_raised": "A hand went up at `position` (to the stage and the queue only).",
        "hand_lowered": "A hand came down; those behind `position` move up by one.",
        "speaker_invited": "A listener was invited on stage (to the stage and the invitee).",
        "invite_withdrawn": "An invitation ended: declined, or lapsed.",
    }
)


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateRoomRequest:
    """`POST /api/rooms` body."""

    title: Annotated[str, MaxLen(MAX_TITLE)]
    topics: Annotated[tuple[Annotated[str, MaxLen(MAX_TOPIC)], ...], MaxLen(MAX_TOPICS)] = ()
    languages: Annotated[
        tuple[Annotated[str, MaxLen(MAX_LANGUAGE)], ...], MaxLen(MAX_LANGUAGES)
    ] = ()
    stage_size: Annotated[int, Range(1, 50)] = 10


def field_names(cls: type) -> tuple[str, ...]:
    """Wire fields of a message class, in order, without the type tag."""
    return tuple(f.name for f in fields(cls))


def describe() -> dict[str, dict[str, tuple[str, ...]]]:
    """Every message type and its fields, grouped by direction: what the docs must list."""
    return {
        "commands": {t: field_names(c) for t, c in COMMANDS.items()},
        "server": {t: field_names(c) for t, c in SERVER_MESSAGES.items()},
        "events": {t: field_names(c) for c, t in EVENT_TYPES.items()},
    }
