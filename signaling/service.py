"""Commands from connections, carried out on rooms: store -> bus -> every node's hub.

The service is the only writer of room state on a node. It authorizes nothing itself:
the room does (by capability), and a refused command raises a typed error that the
connection turns into an ``error`` message, with nothing changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from types import MappingProxyType
from typing import Final

from chatrooms import errors
from chatrooms.events import Event, LeaveReason, RoomEndedEvent
from chatrooms.ids import RoomId, UserId, new_room_id
from chatrooms.permissions import Capability, Grant, Role, can
from chatrooms.ports import EventBus, InvalidCursor, Presence, RoomStore
from chatrooms.room import Room
from chatrooms.snapshot import RoomInfo, RoomSnapshot
from signaling.auth import Identity, TokenService
from signaling.config import Settings
from signaling.connection import Connection
from signaling.hub import Hub
from signaling.protocol import schema as s
from signaling.protocol.codec import ProtocolError

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Handler = Callable[[Room, UserId, s.Command, float], list[Event]]


def _target(cmd: s.Command) -> UserId:
    return UserId(getattr(cmd, "user_id", ""))


def _maybe_target(cmd: s.Command) -> UserId | None:
    target = getattr(cmd, "user_id", None)
    return None if target is None else UserId(target)


# Room commands of the wire protocol, and the Room method each one calls.
ROOM_COMMANDS: Final[MappingProxyType[type[s.Command], Handler]] = MappingProxyType(
    {
        s.RaiseHand: lambda r, a, c, now: r.raise_hand(a),
        s.LowerHand: lambda r, a, c, now: r.lower_hand(a, _maybe_target(c)),
        s.Invite: lambda r, a, c, now: r.invite(a, _target(c)),
        s.AcceptInvite: lambda r, a, c, now: r.accept_invite(a),
        s.DeclineInvite: lambda r, a, c, now: r.decline_invite(a),
        s.MoveToAudience: lambda r, a, c, now: r.move_to_audience(a, _target(c)),
        s.StepDown: lambda r, a, c, now: r.step_down(a),
        s.Mute: lambda r, a, c, now: r.mute(a, _maybe_target(c)),
        s.Unmute: lambda r, a, c, now: r.unmute(a, _maybe_target(c)),
        s.Kick: lambda r, a, c, now: r.kick(a, _target(c), now=now),
        s.Ban: lambda r, a, c, now: r.ban(a, _target(c)),
        s.AddModerator: lambda r, a, c, now: r.add_moderator(a, _target(c)),
        s.RemoveModerator: lambda r, a, c, now: r.remove_moderator(a, _target(c)),
        s.Lock: lambda r, a, c, now: r.set_locked(a, True),
        s.Unlock: lambda r, a, c, now: r.set_locked(a, False),
        s.EndRoom: lambda r, a, c, now: r.end(a),
    }
)


class RoomService:
    def __init__(
        self,
        *,
        settings: Settings,
        store: RoomStore,
        bus: EventBus,
        presence: Presence,
        hub: Hub,
        tokens: TokenService,
        media_config: s.MediaConfig,
        clock: Clock = time.time,
    ) -> None:
        self._media_config = media_config
        self._settings = settings
        self._store = store
        self._bus = bus
        self._presence = presence
        self._hub = hub
        self._tokens = tokens
        self._clock = clock
        # (room, user) -> pending removal of someone who dropped without leaving.
        self._grace: dict[tuple[RoomId, UserId], asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._rooms_created = 0

    @property
    def tokens(self) -> TokenService:
        return self._tokens

    # --------------------------------------------------------------- rooms
    async def create_room(
        self, identity: Identity, req: s.CreateRoomRequest
    ) -> tuple[RoomInfo, str]:
        """Create a room hosted by ``identity``; returns it and a token with the host grant."""
        if len(await self._store.list_rooms()) >= self._settings.max_rooms:
            raise errors.InvalidState("this server has as many rooms as it can hold")
        room = Room.create(
            room_id=new_room_id(),
            host_id=identity.user_id,
            host_name=identity.name,
            title=req.title,
            topics=req.topics,
            languages=req.languages,
            stage_size=req.stage_size,
            now=self._clock(),
            kick_cooldown=self._settings.kick_cooldown,
        )
        await self._store.create(room)
        await self._presence.claim(room.room_id, identity.user_id)
        self._rooms_created += 1
        # The creator is on stage from the start; if they never connect, hand over.
        self._schedule_removal(room.room_id, identity.user_id, self._settings.creator_grace)
        grants = dict(identity.grants)
        grants[room.room_id] = Grant.HOST
        token = self._tokens.issue(
            identity.user_id, identity.name, grants=grants, guest=identity.guest
        )
        return room.info(), token

    async def list_rooms(self) -> list[RoomInfo]:
        return await self._store.list_rooms()

    async def room_info(self, room_id: RoomId) -> RoomInfo:
        room = await self._store.load(room_id)
        if room is None or not room.is_open:
            raise errors.RoomNotFound("no such room")
        return room.info()

    @property
    def rooms_created(self) -> int:
        return self._rooms_created

    # ---------------------------------------------------- join and leave
    async def join(self, conn: Connection, name: str | None) -> RoomSnapshot:
        """Put a connection in its room and queue the `joined` snapshot on it."""
        room_id, identity = conn.room_id, conn.identity
        replaced = self._hub.attach(conn)
        try:
            await self._bus.subscribe(room_id, self._hub.on_events)
            events = await self._store.join(
                room_id,
                identity.user_id,
                name or identity.name,
                now=self._clock(),
                grant=identity.grant_for(room_id),
            )
        except BaseException:
            self._hub.detach(conn)
            if replaced is not None:
                self._hub.attach(replaced)
            elif not self._hub.has_room(room_id):
                await self._bus.unsubscribe(room_id)
            raise
        self._cancel_removal(room_id, identity.user_id)
        await self._presence.claim(room_id, identity.user_id)
        if replaced is not None:
            replaced.left = True  # its user is still here, on the new connection
            replaced.close(s.ByeReason.REPLACED, "you joined this room from another connection")
        await self._after(room_id, events)
        room = self._store.cached(room_id)
        if room is None:  # ended while we joined
            raise errors.RoomEnded("the room has ended")
        snap = room.snapshot_for(identity.user_id)
        token = None
        if identity.guest:
            token = self._tokens.issue(identity.user_id, identity.name, guest=True)
        conn.go_live(
            s.Joined(
                protocol=s.PROTOCOL_VERSION,
                you=s.You(user_id=identity.user_id, name=identity.name, guest=identity.guest),
                snapshot=snap,
                token=token,
                media=self._media_config,
            ),
            snap.version,
            snap.queue_version,
        )
        return snap

    async def leave(self, conn: Connection) -> None:
        conn.left = True
        await self._presence.release(conn.room_id, conn.user_id)
        await self._remove(conn.room_id, conn.user_id, LeaveReason.LEFT)
        conn.close(s.ByeReason.LEFT, "you left the room")

    async def disconnected(self, conn: Connection) -> None:
        """The transport closed. Unless the user left or reconnected, keep their place a while."""
        current = self._hub.detach(conn)
        if not self._hub.has_room(conn.room_id):
            await self._bus.unsubscribe(conn.room_id)
        if current and not conn.left:
            self._schedule_removal(conn.room_id, conn.user_id, self._settings.reconnect_grace)

    def _schedule_removal(self, room_id: RoomId, user_id: UserId, after: float) -> None:
        self._cancel_removal(room_id, user_id)
        loop = asyncio.get_running_loop()
        self._grace[(room_id, user_id)] = loop.call_later(
            after, self._spawn_removal, room_id, user_id
        )

    def _cancel_removal(self, room_id: RoomId, user_id: UserId) -> None:
        handle = self._grace.pop((room_id, user_id), None)
        if handle is not None:
            handle.cancel()

    def _spawn_removal(self, room_id: RoomId, user_id: UserId) -> None:
        self._grace.pop((room_id, user_id), None)
        if self._hub.connection(room_id, user_id) is not None:
            return  # came back
        task = asyncio.get_running_loop().create_task(self._expire(room_id, user_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _expire(self, room_id: RoomId, user_id: UserId) -> None:
        """The grace is over: remove them, unless they came back on another node."""
        if await self._presence.release(room_id, user_id):
            await self._remove(room_id, user_id, LeaveReason.DISCONNECTED)

    async def evict(self, room_id: RoomId, user_id: UserId) -> None:
        """A participant of a dead node: remove them as if they had dropped."""
        await self._remove(room_id, user_id, LeaveReason.DISCONNECTED)

    async def _remove(self, room_id: RoomId, user_id: UserId, reason: LeaveReason) -> None:
        try:
            events = await self._store.leave(room_id, user_id, reason)
        except errors.ChatroomsError:
            return  # already gone (kicked, ended, or never there)
        await self._after(room_id, events)

    # ------------------------------------------------------------ commands
    async def execute(self, conn: Connection, cmd: s.Command) -> None:
        handler = ROOM_COMMANDS.get(type(cmd))
        if handler is None:
            raise errors.InvalidArgument(f"{cmd.type} is not a room command")
        actor = conn.user_id
        now = self._clock()
        involved = [actor] + ([t] if (t := _maybe_target(cmd)) is not None else [])
        events = await self._store.apply(
            conn.room_id, lambda r: handler(r, actor, cmd, now), involved
        )
        await self._after(conn.room_id, events)

    def room_of(self, conn: Connection) -> Room:
        """This node's view of the connection's room (open)."""
        room = self._store.cached(conn.room_id)
        if room is None or not room.is_open:
            raise errors.RoomEnded("the room has ended")
        return room

    async def snapshot(self, conn: Connection) -> RoomSnapshot:
        """For a client that saw a gap: the latest committed state, read from the store
        (this node's view may trail another node's commit by a moment); the cached view
        if the store is away. Events older than it are ignored by the client."""
        with contextlib.suppress(errors.Unavailable):
            await self._store.load(conn.room_id)
        return self.room_of(conn).snapshot_for(conn.user_id)

    async def list_audience(self, conn: Connection, cmd: s.ListAudience) -> s.Audience:
        """One page of the listeners, for those who may invite them (pulled, never pushed)."""
        # A listener is not in a partial (Redis) view of the room: no role means listener.
        role = self.room_of(conn).role_of(conn.user_id) or Role.LISTENER
        if not can(role, Capability.INVITE):
            raise errors.Forbidden(f"a {role.value} may not do this")
        try:
            users, next_cursor, total = await self._store.list_audience(
                conn.room_id, cmd.cursor, cmd.limit
            )
        except InvalidCursor as exc:
            raise ProtocolError(
                s.ProtocolErrorCode.INVALID_FIELD, f"cursor: {exc}", cmd.id
            ) from exc
        return s.Audience(
            id=cmd.id,
            users=tuple(s.AudienceMember(user_id=u, name=n) for u, n in users),
            next_cursor=next_cursor,
            total=total,
        )

    async def _after(self, room_id: RoomId, events: list[Event]) -> None:
        """The store has published the events; an ended room is forgotten."""
        if any(isinstance(e, RoomEndedEvent) for e in events):
            for key in [k for k in self._grace if k[0] == room_id]:
                self._cancel_removal(*key)
            await self._store.drop(room_id)

    # ------------------------------------------------------------ shutdown
    async def close(self) -> None:
        for handle in self._grace.values():
            handle.cancel()
        self._grace.clear()
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
