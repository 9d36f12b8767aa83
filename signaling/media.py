"""The bridge between rooms and the SFU: peer connections of connected participants,
who may be heard, and active speakers.

Every node runs the same observer on the room events it receives, so the SFU of each
node forwards exactly the users that the room says are on stage and unmuted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Sequence

from chatrooms.events import Event, RoomEndedEvent
from chatrooms.ids import RoomId, UserId
from chatrooms.ports import MediaBus, MediaPacket
from chatrooms.room import Room
from signaling.config import Settings
from signaling.connection import Connection
from signaling.hub import Hub
from signaling.protocol import schema as s
from signaling.protocol.codec import EncodedOnce, ProtocolError
from signaling.sfu import (
    ActiveSpeakers,
    IceCandidateInit,
    IceServer,
    OfferError,
    Session,
    SessionClosed,
    Sfu,
    SfuSettings,
)

log = logging.getLogger(__name__)


def sfu_settings(settings: Settings) -> SfuSettings:
    servers = []
    for url in settings.ice_servers:
        turn = url.startswith(("turn:", "turns:"))
        servers.append(
            IceServer(
                urls=(url,),
                username=settings.turn_username if turn else None,
                credential=settings.turn_password if turn else None,
            )
        )
    return SfuSettings(
        audio_slots=settings.audio_slots,
        ice_gather_addresses=settings.ice_addresses,
        bind_host=settings.media_bind_host,
        public_ip=settings.public_ip,
        udp_port_min=settings.udp_port_min,
        udp_port_max=settings.udp_port_max,
        ice_servers=tuple(servers),
        connect_timeout=settings.media_connect_timeout,
        silence_timeout=settings.media_silence_timeout,
    )


class MediaService:
    def __init__(
        self,
        sfu: Sfu,
        hub: Hub,
        bus: MediaBus,
        node_id: str,
        *,
        large_room: int = 2000,
        large_room_speakers_interval: float = 1.0,
    ) -> None:
        self._large_room = large_room
        self._large_room_speakers_interval = large_room_speakers_interval
        self._speakers_due: dict[RoomId, tuple[str, ...]] = {}
        self._speakers_sent_at: dict[RoomId, float] = {}
        self._speakers_timer: dict[RoomId, asyncio.TimerHandle] = {}
        self._sfu = sfu
        self._hub = hub
        self._bus = bus
        self._node_id = node_id
        sfu.on_forwarded = self._relay
        # room -> user -> (the signaling connection that owns it, its session)
        self._sessions: dict[RoomId, dict[UserId, tuple[Connection, Session]]] = {}
        self._speaker_subs: dict[RoomId, Callable[[], None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.config = s.MediaConfig(
            audio_slots=sfu.settings.audio_slots,
            ice_servers=tuple(
                s.IceServerConfig(urls=i.urls, username=i.username, credential=i.credential)
                for i in sfu.settings.ice_servers
            ),
        )

    @property
    def sfu(self) -> Sfu:
        return self._sfu

    # ------------------------------------------------------------ signaling
    async def offer(self, conn: Connection, room: Room, sdp: str) -> str:
        """Answer a participant's offer, opening their session on the first one."""
        current = self._owned(conn)
        if current is None:
            session = await self._sfu.open(
                conn.room_id, conn.user_id, on_closed=lambda c: self._closed(conn, c)
            )
            self._sessions.setdefault(conn.room_id, {})[conn.user_id] = (conn, session)
            self._watch_speakers(conn.room_id)
            first = True
        else:
            session, first = current, False
        self._sfu.set_audible(conn.room_id, conn.user_id, room.audible(conn.user_id))
        try:
            return await session.apply_offer(sdp)
        except OfferError as exc:
            if first:
                await self._close_session(conn)
            raise ProtocolError(s.ProtocolErrorCode.INVALID_SDP, str(exc)[:200]) from exc

    def session_count(self) -> int:
        """Media sessions on this node (each holds at least one UDP socket)."""
        return sum(len(users) for users in self._sessions.values())

    def _owned(self, conn: Connection) -> Session | None:
        """This connection's session (not one a newer connection of the user replaced)."""
        entry = self._sessions.get(conn.room_id, {}).get(conn.user_id)
        return entry[1] if entry is not None and entry[0] is conn else None

    def _forget(self, room_id: RoomId, user_id: UserId, conn: Connection) -> bool:
        users = self._sessions.get(room_id)
        entry = users.get(user_id) if users else None
        if users is None or entry is None or entry[0] is not conn:
            return False
        del users[user_id]
        if not users:
            del self._sessions[room_id]
            unsubscribe = self._speaker_subs.pop(room_id, None)
            if unsubscribe is not None:
                unsubscribe()
            self._spawn(self._bus.unsubscribe(room_id))
        return True

    async def candidate(self, conn: Connection, cmd: s.RtcCandidate) -> None:
        current = self._owned(conn)
        if current is None:
            raise ProtocolError(s.ProtocolErrorCode.INVALID_CANDIDATE, "send rtc_offer first")
        init = None
        if cmd.candidate:
            init = IceCandidateInit(
                candidate=cmd.candidate, sdp_mid=cmd.sdp_mid, sdp_mline_index=cmd.sdp_mline_index
            )
        try:
            await current.add_candidate(init)
        except ValueError as exc:
            raise ProtocolError(s.ProtocolErrorCode.INVALID_CANDIDATE, str(exc)[:200]) from exc

    def _closed(self, conn: Connection, closed: SessionClosed) -> None:
        """The SFU ended a session (failed, silent, ...): tell its client, who may re-offer."""
        if self._forget(RoomId(closed.room_id), UserId(closed.user_id), conn):
            conn.send(s.RtcClosed(reason=closed.reason.value))

    async def _close_session(self, conn: Connection) -> None:
        session = self._owned(conn)
        if session is not None:
            self._forget(conn.room_id, conn.user_id, conn)
            await session.close()

    async def disconnected(self, conn: Connection) -> None:
        """The signaling connection is gone: so is its peer connection."""
        await self._close_session(conn)

    # ------------------------------------------------------------ room state
    def on_events(self, room_id: RoomId, room: Room | None, events: Sequence[Event]) -> None:
        """Keep who may be heard in step with the room, on every node."""
        if any(isinstance(e, RoomEndedEvent) for e in events):
            self._sessions.pop(room_id, None)
            unsubscribe = self._speaker_subs.pop(room_id, None)
            if unsubscribe is not None:
                unsubscribe()
            self._spawn(self._sfu.close_room(room_id))
            return
        if room is None:
            return
        touched = {u for e in events if (u := getattr(e, "user_id", None)) is not None}
        for user_id in touched:
            self._sfu.set_audible(room_id, user_id, room.audible(UserId(user_id)))

    # ------------------------------------------------------------ other nodes
    def _relay(
        self,
        room_id: str,
        user_id: str,
        sequence_number: int,
        timestamp: int,
        payload: bytes,
        level: int | None,
        stream: int,
    ) -> None:
        packet = MediaPacket(
            self._node_id,
            UserId(user_id),
            sequence_number,
            timestamp,
            level,
            payload,
            time.time(),
            stream,
        )
        self._bus.publish(RoomId(room_id), packet)

    def _ingest(self, room_id: RoomId, packet: MediaPacket) -> None:
        self._sfu.ingest(
            room_id,
            packet.user_id,
            packet.sequence_number,
            packet.timestamp,
            packet.payload,
            packet.level,
            packet.stream,
        )

    def _watch_speakers(self, room_id: RoomId) -> None:
        if room_id in self._speaker_subs:
            return
        self._spawn(self._bus.subscribe(room_id, self._ingest))

        def forward(update: ActiveSpeakers) -> None:
            self._speakers_due[room_id] = update.user_ids
            if room_id in self._speakers_timer:
                return  # a send is scheduled and will carry the latest
            loop = asyncio.get_running_loop()
            large = self._hub.connection_count_in(room_id) >= self._large_room
            gap = self._large_room_speakers_interval if large else 0.0
            wait = self._speakers_sent_at.get(room_id, -1e9) + gap - loop.time()
            if wait <= 0:
                self._send_speakers(room_id)
            else:
                self._speakers_timer[room_id] = loop.call_later(wait, self._send_speakers, room_id)

        self._speaker_subs[room_id] = self._sfu.on_active_speakers(room_id, forward)

    def _send_speakers(self, room_id: RoomId) -> None:
        """One frame per connection of the room; large rooms get it at most once a
        ``large_room_speakers_interval`` (each update costs a frame per listener)."""
        self._speakers_timer.pop(room_id, None)
        users = self._speakers_due.pop(room_id, None)
        if users is None:
            return
        self._speakers_sent_at[room_id] = asyncio.get_running_loop().time()
        message = EncodedOnce(s.ActiveSpeakersMessage(user_ids=users))
        for conn in self._hub.connections(room_id):
            conn.send(message)

    def _spawn(self, coro: Coroutine[None, None, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for handle in self._speakers_timer.values():
            handle.cancel()
        self._speakers_timer.clear()
        for task in list(self._tasks):
            with contextlib.suppress(Exception):
                await task
        for unsubscribe in self._speaker_subs.values():
            unsubscribe()
        self._speaker_subs.clear()
        self._sessions.clear()
        with contextlib.suppress(Exception):
            await self._sfu.close()
