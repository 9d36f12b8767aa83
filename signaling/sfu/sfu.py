"""The SFU service: rooms of peer connections, negotiated with aiortc, forwarded raw."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
import time
import uuid
from collections.abc import Callable
from typing import Any

from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.rtp import RtcpSrPacket, RtpPacket
from aiortc.sdp import SessionDescription, candidate_from_sdp

from . import aiortc_internals as internals
from .forwarder import InboundStats, Outlet, RoomForwarder, receiver_report
from .settings import (
    ActiveSpeakers,
    CloseReason,
    IceCandidateInit,
    SessionClosed,
    SessionState,
    SfuSettings,
)

logger = logging.getLogger(__name__)

ActiveSpeakersCallback = Callable[[ActiveSpeakers], None]
ClosedCallback = Callable[[SessionClosed], None]
# (room, speaker, sequence number, timestamp, Opus payload, audio level or None)
# room, speaker, sequence number, timestamp, payload, level, stream (the speaker's SSRC)
RelayCallback = Callable[[str, str, int, int, bytes, int | None, int], None]


class OfferError(ValueError):
    """The client's offer does not follow the negotiation contract (see the package doc)."""


class _Role(enum.Enum):
    SLOT = "slot"
    SEND = "send"
    UNUSED = "unused"


def _ntp_now() -> int:
    t = time.time() + 2208988800
    return int(t * (1 << 32)) & 0xFFFFFFFFFFFFFFFF


def _opus_payload_type(media: Any) -> int | None:
    for codec in media.rtp.codecs:
        if codec.mimeType.lower() == "audio/opus":
            pt: int = codec.payloadType
            return pt
    return None


class _Room:
    def __init__(self, room_id: str, settings: SfuSettings) -> None:
        self.room_id = room_id
        self.forwarder = RoomForwarder(
            room_id, settings.audio_slots, settings.slot_policy, cname=f"sfu-{room_id}"
        )
        self.sessions: dict[str, Session] = {}
        self.subscribers: list[ActiveSpeakersCallback] = []
        self.last_speakers: tuple[str, ...] = ()
        self.last_speakers_at = -1e9
        self.next_rtcp = time.monotonic() + settings.rtcp_interval * random.uniform(0.5, 1.0)

    def is_empty(self) -> bool:
        return not self.sessions and not self.subscribers and self.forwarder.is_empty()


class Session:
    """One participant's peer connection in one room. Created by :meth:`Sfu.open`."""

    def __init__(
        self,
        sfu: Sfu,
        room: _Room,
        user_id: str,
        on_closed: ClosedCallback | None,
    ) -> None:
        self._sfu = sfu
        self._room = room
        self.user_id = user_id
        self._on_closed = on_closed
        self._state = SessionState.NEW
        self._pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self._pc.on("connectionstatechange", self._on_connection_state)
        self._lock = asyncio.Lock()
        self._roles: dict[str, _Role] = {}  # mid -> role
        self._slot_mids: list[str] = []
        self._payload_type: int | None = None  # Opus PT of the slots (outgoing)
        self._send_pts: frozenset[int] = frozenset()  # Opus PTs of send m-lines (incoming)
        self._pending_candidates: list[IceCandidateInit | None] = []
        self._offered = False
        self._activity = internals.Activity()
        self._opened_at = time.monotonic()
        self._offer_at: float | None = None
        self._inbound: dict[int, InboundStats] = {}
        self._rtcp_ssrc = random.getrandbits(32) or 1
        self._outlet: Outlet | None = None
        self._closed_event = asyncio.Event()

    @property
    def room_id(self) -> str:
        return self._room.room_id

    @property
    def state(self) -> SessionState:
        return self._state

    @property
    def peer_connection(self) -> RTCPeerConnection:
        """The server-side aiortc peer connection (for diagnostics and tests)."""
        return self._pc

    async def wait_closed(self) -> None:
        await self._closed_event.wait()

    async def apply_offer(self, sdp: str) -> str:
        """Apply the client's offer (first or renegotiation) and return the answer SDP.

        The answer carries every server candidate (no trickle from the server).
        Raises :class:`OfferError` if the offer breaks the contract; the session is
        then unchanged if it was connected, or should be closed by the caller.
        """
        async with self._lock:
            if self._state is SessionState.CLOSED:
                raise OfferError("session is closed")
            try:
                parsed = SessionDescription.parse(sdp)
            except Exception as exc:
                raise OfferError(f"unparsable offer: {exc}") from exc
            self._check_offer(parsed)
            pc = self._pc
            try:
                await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            except Exception as exc:
                raise OfferError(f"offer rejected: {exc}") from exc
            # No await from here until the hooks are in: aiortc's connect task is queued.
            self._hook_transceivers(parsed)
            settings = self._sfu.settings
            if not self._offered:
                await internals.gather_host_candidates(
                    pc,
                    settings.ice_gather_addresses,
                    bind_host=settings.bind_host,
                    public_ip=settings.public_ip,
                    port_range=settings.port_range,
                )
                internals.watch_activity(pc, self._activity)
            answer = await pc.createAnswer()
            await pc.setLocalDescription(answer)
            local = pc.localDescription.sdp
            self._read_answer(local)
            if not self._offered:
                self._offered = True
                self._offer_at = time.monotonic()
                if self._state is SessionState.NEW:
                    self._state = SessionState.CONNECTING
                pending, self._pending_candidates = self._pending_candidates, []
                for candidate in pending:
                    await self._add_candidate(candidate)
            return local

    def _check_offer(self, parsed: SessionDescription) -> None:
        audio = [m for m in parsed.media if m.kind == "audio"]
        if not self._offered:
            recvonly = [m for m in audio if m.direction == "recvonly"]
            k = self._sfu.settings.audio_slots
            if len(recvonly) != k:
                raise OfferError(
                    f"the first offer must have exactly {k} recvonly audio m-lines, "
                    f"got {len(recvonly)}"
                )
        else:
            mids = {m.rtp.muxId for m in parsed.media}
            missing = [mid for mid in self._slot_mids if mid not in mids]
            if missing:
                raise OfferError(f"renegotiation dropped slot m-lines {missing}")
        for m in audio:
            if _opus_payload_type(m) is None and m.direction != "inactive":
                raise OfferError(f"audio m-line {m.rtp.muxId} does not offer Opus")

    def _hook_transceivers(self, parsed: SessionDescription) -> None:
        room = self._room
        by_mid = {m.rtp.muxId: m for m in parsed.media}
        for transceiver in self._pc.getTransceivers():
            mid = transceiver.mid
            if mid is None or mid in self._roles:
                continue
            media = by_mid.get(mid)
            role = _Role.UNUSED
            if media is not None and media.kind == "audio":
                if not self._offered and media.direction == "recvonly":
                    role = _Role.SLOT
                elif media.direction in ("sendonly", "sendrecv"):
                    role = _Role.SEND
            self._roles[mid] = role
            if role is _Role.SLOT:
                index = len(self._slot_mids)
                self._slot_mids.append(mid)
                transceiver.direction = "sendonly"
                internals.set_sender_ssrc(transceiver.sender, room.forwarder.slots[index].ssrc)
                internals.hook_sender(transceiver.sender, self._on_rtcp)
                internals.hook_receiver(transceiver.receiver, _drop, self._on_rtcp)
            elif role is _Role.SEND:
                transceiver.direction = "recvonly"
                internals.hook_sender(transceiver.sender, self._on_rtcp)
                internals.hook_receiver(transceiver.receiver, self._on_rtp, self._on_rtcp)
            else:
                transceiver.direction = "inactive"
                internals.hook_sender(transceiver.sender)
                internals.hook_receiver(transceiver.receiver, _drop)

    def _read_answer(self, sdp: str) -> None:
        parsed = SessionDescription.parse(sdp)
        by_mid = {m.rtp.muxId: m for m in parsed.media}
        pts = {_opus_payload_type(by_mid[mid]) for mid in self._slot_mids if mid in by_mid}
        if len(pts) != 1 or None in pts:
            raise OfferError("slot m-lines must share one Opus payload type")
        self._payload_type = pts.pop()
        self._send_pts = frozenset(
            pt
            for mid, role in self._roles.items()
            if role is _Role.SEND
            and mid in by_mid
            and (pt := _opus_payload_type(by_mid[mid])) is not None
        )

    async def add_candidate(self, candidate: IceCandidateInit | None) -> None:
        """Add a trickled client candidate; None means end-of-candidates.

        Candidates arriving before the first offer are kept until it is applied.
        """
        async with self._lock:
            if self._state is SessionState.CLOSED:
                return
            if not self._offered:
                self._pending_candidates.append(candidate)
                return
            await self._add_candidate(candidate)

    async def _add_candidate(self, candidate: IceCandidateInit | None) -> None:
        if candidate is None:
            await self._pc.addIceCandidate(None)
            return
        text = candidate.candidate
        if text.startswith("candidate:"):
            text = text[len("candidate:") :]
        if not text.strip():  # the browser's empty candidate: end-of-candidates
            await self._pc.addIceCandidate(None)
            return
        try:
            rtc = candidate_from_sdp(text)
        except (AssertionError, ValueError, IndexError) as exc:
            raise ValueError(f"bad candidate {candidate.candidate!r}") from exc
        rtc.sdpMid = candidate.sdp_mid
        rtc.sdpMLineIndex = candidate.sdp_mline_index
        if rtc.sdpMid is None and rtc.sdpMLineIndex is None:
            rtc.sdpMLineIndex = 0
        await self._pc.addIceCandidate(rtc)

    async def close(self) -> None:
        """Close the peer connection and leave the room. Idempotent."""
        await self._close(CloseReason.CLOSED)

    # --- callbacks from aiortc -----------------------------------------------------

    def _on_connection_state(self) -> None:
        state = self._pc.connectionState
        if state == "connected" and self._state is SessionState.CONNECTING:
            path = internals.fast_path(self._pc)
            if path is None or self._payload_type is None:
                self._sfu._spawn(self._close(CloseReason.FAILED))
                return
            self._state = SessionState.CONNECTED
            self._activity.last = time.monotonic()
            self._outlet = Outlet(
                user_id=self.user_id,
                payload_type=self._payload_type,
                protect=path.protect,
                protect_rtcp=path.protect_rtcp,
                sendto=path.sendto,
                addr=path.addr,
            )
            forwarder = self._room.forwarder
            forwarder.set_present(self.user_id, True)
            forwarder.add_outlet(self._outlet)
        elif state == "failed":
            self._sfu._spawn(self._close(CloseReason.FAILED))
        elif state == "closed" and self._state is not SessionState.CLOSED:
            self._sfu._spawn(self._close(CloseReason.PEER_LEFT))

    def _on_rtp(self, packet: RtpPacket) -> None:
        # Only Opus, as negotiated on the send m-lines.
        if self._state is not SessionState.CONNECTED or packet.payload_type not in self._send_pts:
            return
        stats = self._inbound.get(packet.ssrc)
        if stats is None:
            stats = self._inbound[packet.ssrc] = InboundStats(packet.ssrc)
        stats.add(packet.sequence_number)
        level = packet.extensions.audio_level
        value = None if level is None else level[1]
        forwarder = self._room.forwarder
        forwarder.on_rtp(
            self.user_id,
            packet.sequence_number,
            packet.timestamp,
            packet.payload,
            value,
            time.monotonic(),
            packet.ssrc,
        )
        relay = self._sfu.on_forwarded
        if relay is not None and forwarder.heard(self.user_id):
            relay(
                self._room.room_id,
                self.user_id,
                packet.sequence_number,
                packet.timestamp,
                packet.payload,
                value,
                packet.ssrc,
            )

    def _on_rtcp(self, packet: Any) -> None:
        if isinstance(packet, RtcpSrPacket):
            stats = self._inbound.get(packet.ssrc)
            if stats is not None:
                stats.lsr = (packet.sender_info.ntp_timestamp >> 16) & 0xFFFFFFFF
                stats.lsr_at = time.monotonic()

    def _receiver_report(self, now: float) -> bytes | None:
        reports = [r for s in self._inbound.values() if (r := s.report(now)) is not None]
        if not reports:
            return None
        return receiver_report(self._rtcp_ssrc, reports)

    # --- lifecycle -----------------------------------------------------------------

    async def _close(self, reason: CloseReason) -> None:
        if self._state is SessionState.CLOSED:
            await self._closed_event.wait()
            return
        self._state = SessionState.CLOSED
        self._sfu._forget(self)
        try:
            await self._pc.close()
        except Exception:  # pragma: no cover - aiortc teardown errors must not leak
            logger.exception("closing peer connection of %s/%s", self.room_id, self.user_id)
        self._pc.remove_all_listeners()
        self._closed_event.set()
        if self._on_closed is not None:
            try:
                self._on_closed(SessionClosed(self.room_id, self.user_id, reason))
            except Exception:
                logger.exception("on_closed callback failed")

    def _check_timeouts(self, now: float) -> CloseReason | None:
        settings = self._sfu.settings
        if self._state is SessionState.CONNECTED:
            if now - self._activity.last > settings.silence_timeout:
                return CloseReason.SILENT
        elif self._state in (SessionState.NEW, SessionState.CONNECTING):
            start = self._offer_at if self._offer_at is not None else self._opened_at
            if now - start > settings.connect_timeout:
                return CloseReason.CONNECT_TIMEOUT
        return None


def _drop(packet: RtpPacket) -> None:
    return None


class Sfu:
    """The media core. One per process; owned by the application (``await close()``)."""

    def __init__(self, settings: SfuSettings | None = None) -> None:
        internals.verify_internals()
        self.settings = settings or SfuSettings()
        self._rooms: dict[str, _Room] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ticker: asyncio.Task[None] | None = None
        self._closing = False
        self.node_id = uuid.uuid4().hex[:8]
        #: Told of each packet of a local speaker that this node forwards, so that other
        #: nodes can forward it to their listeners too (the media bus).
        self.on_forwarded: RelayCallback | None = None

    # --- public API ---------------------------------------------------------------

    async def open(
        self, room_id: str, user_id: str, *, on_closed: ClosedCallback | None = None
    ) -> Session:
        """Open a session for ``user_id`` in ``room_id`` (a previous one is REPLACED)."""
        if self._closing:
            raise RuntimeError("Sfu is closed")
        room = self._room(room_id)
        old = room.sessions.get(user_id)
        if old is not None:
            await old._close(CloseReason.REPLACED)
            room = self._room(room_id)
        session = Session(self, room, user_id, on_closed)
        room.sessions[user_id] = session
        self._ensure_ticker()
        return session

    def ingest(
        self,
        room_id: str,
        user_id: str,
        sequence_number: int,
        timestamp: int,
        payload: bytes,
        level: int | None,
        stream: int = 0,
    ) -> None:
        """A packet of a speaker connected to another node: forward it to local listeners.

        The room's own view of who is audible still decides, on this node too.
        """
        room = self._rooms.get(room_id)
        if room is None or not room.sessions:
            return
        forwarder = room.forwarder
        if not forwarder.heard(user_id):
            forwarder.set_present(user_id, True)  # a remote speaker: present elsewhere
        forwarder.on_rtp(
            user_id, sequence_number, timestamp, payload, level, time.monotonic(), stream
        )

    def session(self, room_id: str, user_id: str) -> Session | None:
        room = self._rooms.get(room_id)
        return None if room is None else room.sessions.get(user_id)

    def set_audible(self, room_id: str, user_id: str, audible: bool) -> None:
        """Whether ``user_id``'s audio is forwarded (on stage and not muted).

        Takes effect for the very next packet. Kept for the room until set False
        or the room is closed, whether or not the user has a session.
        """
        if not audible and room_id not in self._rooms:
            return
        room = self._room(room_id)
        room.forwarder.set_audible(user_id, audible)
        self._maybe_drop(room)

    def on_active_speakers(
        self, room_id: str, callback: ActiveSpeakersCallback
    ) -> Callable[[], None]:
        """Call ``callback`` when the room's speaking users change (at most every
        ``active_speakers_interval``). Returns a function that unsubscribes."""
        room = self._room(room_id)
        room.subscribers.append(callback)
        self._ensure_ticker()

        def unsubscribe() -> None:
            current = self._rooms.get(room_id)
            if current is not None and callback in current.subscribers:
                current.subscribers.remove(callback)
                self._maybe_drop(current)

        return unsubscribe

    async def close_room(self, room_id: str) -> None:
        """Close every session of the room and forget it."""
        room = self._rooms.get(room_id)
        if room is None:
            return
        await asyncio.gather(*(s._close(CloseReason.CLOSED) for s in list(room.sessions.values())))
        room.subscribers.clear()
        self._rooms.pop(room_id, None)

    def room_ids(self) -> list[str]:
        return list(self._rooms)

    def forwarder(self, room_id: str) -> RoomForwarder | None:
        """The room's forwarding state (stats, slot holders), for metrics and tests."""
        room = self._rooms.get(room_id)
        return None if room is None else room.forwarder

    async def close(self) -> None:
        """Close every session and stop the background task."""
        self._closing = True
        sessions = [s for room in self._rooms.values() for s in room.sessions.values()]
        await asyncio.gather(*(s._close(CloseReason.SHUTDOWN) for s in sessions))
        self._rooms.clear()
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # --- internals ----------------------------------------------------------------

    def _room(self, room_id: str) -> _Room:
        room = self._rooms.get(room_id)
        if room is None:
            room = self._rooms[room_id] = _Room(room_id, self.settings)
        return room

    def _maybe_drop(self, room: _Room) -> None:
        if room.is_empty() and self._rooms.get(room.room_id) is room:
            del self._rooms[room.room_id]

    def _forget(self, session: Session) -> None:
        room = session._room
        if room.sessions.get(session.user_id) is session:
            del room.sessions[session.user_id]
            room.forwarder.set_present(session.user_id, False)
        self._maybe_drop(room)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _ensure_ticker(self) -> None:
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.create_task(self._run())

    async def _run(self) -> None:
        settings = self.settings
        while not self._closing:
            await asyncio.sleep(settings.tick_interval)
            try:
                self._tick(time.monotonic())
            except Exception:  # pragma: no cover - keep the SFU alive
                logger.exception("SFU tick failed")

    def _tick(self, now: float) -> None:
        settings = self.settings
        for room in list(self._rooms.values()):
            forwarder = room.forwarder
            forwarder.tick(now)
            due = now - room.last_speakers_at >= settings.active_speakers_interval
            if room.subscribers and due:
                speaking = forwarder.speaking(settings.speaking_level_dbov)
                users = tuple(u for u, _ in speaking)
                # Only a change of who talks is news: the loudest-first order flips all
                # the time, and each update is a frame to every listener of the room.
                if frozenset(users) != frozenset(room.last_speakers):
                    room.last_speakers = users
                    room.last_speakers_at = now
                    message = ActiveSpeakers(room.room_id, users, tuple(lv for _, lv in speaking))
                    for callback in list(room.subscribers):
                        try:
                            callback(message)
                        except Exception:
                            logger.exception("active speakers callback failed")
            if now >= room.next_rtcp:
                room.next_rtcp = now + settings.rtcp_interval * random.uniform(0.5, 1.5)
                sr = forwarder.sender_report(now, _ntp_now())
                if sr is not None:
                    forwarder.send_rtcp_to_listeners(sr)
                for session in room.sessions.values():
                    outlet = session._outlet
                    if outlet is None or session.state is not SessionState.CONNECTED:
                        continue
                    rr = session._receiver_report(now)
                    if rr is not None:
                        with contextlib.suppress(OSError):
                            outlet.sendto(outlet.protect_rtcp(rr), outlet.addr)
            for session in list(room.sessions.values()):
                reason = session._check_timeouts(now)
                if reason is not None:
                    self._spawn(session._close(reason))
