"""A non-decoding aiortc client peer, for tests and load tests.

It follows the negotiation contract of the SFU (see the package docstring): the
first offer has K recvonly audio transceivers; :meth:`AudioPeer.offer_send`
adds a sendonly one and re-offers. Received RTP is tapped raw (no decoder
thread); sent RTP is built by hand with an RFC 6464 audio level and goes out on
the same protect + sendto fast path as the server's.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpTransceiver, RTCSessionDescription
from aiortc.rtp import RtpPacket
from aiortc.sdp import SessionDescription

from . import aiortc_internals as internals
from .rtp import AUDIO_LEVEL_URI, pack_header


@dataclass(frozen=True, slots=True)
class ReceivedPacket:
    """One RTP packet as the listener's browser would see it (after SRTP)."""

    slot: int  # index of the slot (recvonly transceiver), -1 if unknown SSRC
    ssrc: int
    sequence_number: int
    timestamp: int
    marker: bool
    payload_type: int
    payload: bytes


def audio_level_extension(extension_id: int, level: int, voice: bool = True) -> bytes:
    """RFC 8285 one-byte header extension block carrying one RFC 6464 level."""
    if not 1 <= extension_id <= 14 or not 0 <= level <= 127:
        raise ValueError("bad extension id or level")
    return bytes([0xBE, 0xDE, 0x00, 0x01, extension_id << 4, (0x80 if voice else 0) | level, 0, 0])


class AudioPeer:
    """A client peer connection: K receive-only slots, optionally one send track."""

    def __init__(
        self,
        *,
        slots: int = 3,
        gather_addresses: Sequence[str] = ("127.0.0.1",),
        on_packet: Callable[[ReceivedPacket], None] | None = None,
        keep_packets: bool = True,
    ) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.slots = slots
        self.received: list[ReceivedPacket] = []
        #: RTCP packets the SFU sent us (sender reports for the slots, receiver
        #: reports for our send track), as parsed by aiortc.
        self.rtcp: list[Any] = []
        self._keep = keep_packets
        self._on_packet = on_packet
        self._gather_addresses = tuple(gather_addresses)
        self._slot_transceivers: list[RTCRtpTransceiver] = []
        self._send_transceiver: RTCRtpTransceiver | None = None
        self._ssrc_slot: dict[int, int] = {}
        self._send_pt = 0
        self._send_level_id = 0
        self._send_ssrc = 0
        self._seq = random.randrange(32768)
        self._ts = random.getrandbits(32)
        self._path: internals.FastPath | None = None
        self._gathered = False

    # --- negotiation ---------------------------------------------------------------

    async def offer(self) -> str:
        """The first offer: K recvonly audio transceivers."""
        for _ in range(self.slots):
            transceiver = self.pc.addTransceiver("audio", direction="recvonly")
            internals.hook_sender(transceiver.sender, self.rtcp.append)
            internals.hook_receiver(transceiver.receiver, self._on_rtp, self.rtcp.append)
            self._slot_transceivers.append(transceiver)
        return await self._make_offer()

    async def offer_send(self) -> str:
        """Add a sendonly audio transceiver (promotion) and return the new offer."""
        if self._send_transceiver is None:
            transceiver = self.pc.addTransceiver("audio", direction="sendonly")
            internals.hook_sender(transceiver.sender, self.rtcp.append)
            internals.hook_receiver(transceiver.receiver, self._on_rtp, self.rtcp.append)
            self._send_transceiver = transceiver
        else:
            self._send_transceiver.direction = "sendonly"
        return await self._make_offer()

    async def offer_stop_send(self) -> str:
        """Stop sending (demotion on the client side) and return the new offer."""
        if self._send_transceiver is not None:
            self._send_transceiver.direction = "inactive"
        return await self._make_offer()

    async def _make_offer(self) -> str:
        if not self._gathered:
            await internals.gather_host_candidates(self.pc, self._gather_addresses)
            self._gathered = True
        offer = await self.pc.createOffer()
        await self.pc.setLocalDescription(offer)
        sdp: str = self.pc.localDescription.sdp
        return sdp

    async def accept(self, answer_sdp: str) -> None:
        """Apply the SFU's answer."""
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer_sdp, type="answer"))
        parsed = SessionDescription.parse(answer_sdp)
        by_mid = {m.rtp.muxId: m for m in parsed.media}
        for index, transceiver in enumerate(self._slot_transceivers):
            media = by_mid.get(transceiver.mid or "")
            if media is not None and media.ssrc:
                self._ssrc_slot[media.ssrc[0].ssrc] = index
        if self._send_transceiver is not None:
            media = by_mid.get(self._send_transceiver.mid or "")
            if media is not None:
                for codec in media.rtp.codecs:
                    if codec.mimeType.lower() == "audio/opus":
                        self._send_pt = int(codec.payloadType or 0)
                        break
                for ext in media.rtp.headerExtensions:
                    if ext.uri == AUDIO_LEVEL_URI:
                        self._send_level_id = ext.id
                self._send_ssrc = internals.sender_ssrc(self._send_transceiver.sender)

    @property
    def slot_ssrcs(self) -> dict[int, int]:
        """SSRC -> slot index, as announced by the SFU."""
        return dict(self._ssrc_slot)

    async def wait_connected(self, limit: float = 20.0) -> None:
        """Wait (at most ``limit`` seconds) until connected, or raise ConnectionError."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        while self.pc.connectionState != "connected":
            if self.pc.connectionState in ("failed", "closed") or loop.time() > deadline:
                raise ConnectionError(f"peer did not connect: {self.pc.connectionState}")
            await asyncio.sleep(0.02)
        self._path = internals.fast_path(self.pc)

    # --- media ---------------------------------------------------------------------

    def send_audio(
        self, payload: bytes, level: int, *, voice: bool = True, samples: int = 960
    ) -> int:
        """Send one Opus-like RTP packet on the send track; returns its sequence number."""
        path = self._path or internals.fast_path(self.pc)
        if path is None or not self._send_ssrc:
            raise ConnectionError("not connected or no send track negotiated")
        self._path = path
        seq = self._seq
        header = bytearray(
            pack_header(
                marker=False,
                payload_type=self._send_pt,
                sequence_number=seq,
                timestamp=self._ts,
                ssrc=self._send_ssrc,
            )
        )
        ext = b""
        if self._send_level_id:
            header[0] |= 0x10
            ext = audio_level_extension(self._send_level_id, level, voice)
        path.sendto(path.protect(bytes(header) + ext + payload), path.addr)
        self._seq = (seq + 1) & 0xFFFF
        self._ts = (self._ts + samples) & 0xFFFFFFFF
        return seq

    def _on_rtp(self, packet: RtpPacket) -> None:
        received = ReceivedPacket(
            slot=self._ssrc_slot.get(packet.ssrc, -1),
            ssrc=packet.ssrc,
            sequence_number=packet.sequence_number,
            timestamp=packet.timestamp,
            marker=bool(packet.marker),
            payload_type=packet.payload_type,
            payload=packet.payload,
        )
        if self._keep:
            self.received.append(received)
        if self._on_packet is not None:
            self._on_packet(received)

    def packets_in_slot(self, slot: int) -> list[ReceivedPacket]:
        return [p for p in self.received if p.slot == slot]

    async def close(self) -> None:
        await self.pc.close()
