"""Settings of the SFU and the messages it hands to the application."""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass, field
from typing import Any

from .slots import SlotPolicy


@dataclass(frozen=True)
class IceServer:
    """A STUN or TURN server handed to clients (RTCIceServer in the browser)."""

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None

    def __post_init__(self) -> None:
        if not self.urls:
            raise ValueError("IceServer needs at least one url")
        for url in self.urls:
            if not url.startswith(("stun:", "stuns:", "turn:", "turns:")):
                raise ValueError(f"not a STUN/TURN url: {url!r}")

    def to_json(self) -> dict[str, Any]:
        """The RTCIceServer dictionary for the browser's RTCPeerConnection."""
        out: dict[str, Any] = {"urls": list(self.urls)}
        if self.username is not None:
            out["username"] = self.username
        if self.credential is not None:
            out["credential"] = self.credential
        return out


@dataclass(frozen=True)
class SfuSettings:
    """Everything the SFU can be told.

    ICE:
      ``ice_gather_addresses``: local IP addresses to gather host candidates on, one
      UDP socket each per peer connection. Empty: every non-loopback interface
      address (aioice's default). Tests and benchmarks use ``("127.0.0.1",)``.
      ``bind_host``: bind the sockets here instead of on each gathering address
      (e.g. "0.0.0.0" inside a container); the candidate still announces the
      gathering address (or ``public_ip``).
      ``public_ip``: the address announced in host candidates instead of the local
      one (1:1 NAT, e.g. a cloud VM's public address).
      ``udp_port_min``/``udp_port_max``: inclusive UDP port range (both or none).
      ``ice_servers``: STUN/TURN servers for clients only; the server never queries them.
    Liveness:
      ``connect_timeout``: seconds for a session to reach connected after its offer.
      ``silence_timeout``: seconds without any datagram from a connected peer
      (consent checks, RTCP, RTP) before its session is closed.
    Audio:
      ``audio_slots``: K, receive-only audio transceivers of every listener.
      ``slot_policy``: hysteresis of slot switching.
      ``speaking_level_dbov``: a speaker whose smoothed level is at most this -dBov
      counts as speaking for active-speaker updates.
      ``active_speakers_interval``: minimum seconds between two active-speaker
      updates of a room (0.25 = at most 4 per second).
      ``tick_interval``: seconds between slot selections.
      ``rtcp_interval``: mean seconds between RTCP reports to each peer.
    """

    audio_slots: int = 3
    ice_gather_addresses: tuple[str, ...] = ()
    bind_host: str | None = None
    public_ip: str | None = None
    udp_port_min: int | None = None
    udp_port_max: int | None = None
    ice_servers: tuple[IceServer, ...] = ()
    connect_timeout: float = 20.0
    silence_timeout: float = 30.0
    slot_policy: SlotPolicy = field(default_factory=SlotPolicy)
    speaking_level_dbov: int = 50
    active_speakers_interval: float = 0.25
    tick_interval: float = 0.1
    rtcp_interval: float = 2.0

    def __post_init__(self) -> None:
        if not 1 <= self.audio_slots <= 16:
            raise ValueError("audio_slots must be within 1..16")
        for address in (*self.ice_gather_addresses, self.bind_host, self.public_ip):
            if address is not None:
                ipaddress.ip_address(address)  # raises ValueError
        if (self.udp_port_min is None) != (self.udp_port_max is None):
            raise ValueError("set both udp_port_min and udp_port_max, or neither")
        if (
            self.udp_port_min is not None
            and self.udp_port_max is not None
            and not (1 <= self.udp_port_min <= self.udp_port_max <= 65535)
        ):
            raise ValueError("bad UDP port range")
        for name in (
            "connect_timeout",
            "silence_timeout",
            "active_speakers_interval",
            "tick_interval",
            "rtcp_interval",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if not 0 <= self.speaking_level_dbov <= 127:
            raise ValueError("speaking_level_dbov must be within 0..127")

    @property
    def port_range(self) -> tuple[int, int] | None:
        if self.udp_port_min is None or self.udp_port_max is None:
            return None
        return (self.udp_port_min, self.udp_port_max)

    def ice_servers_json(self) -> list[dict[str, Any]]:
        """The ``iceServers`` list to hand to browsers."""
        return [s.to_json() for s in self.ice_servers]


class SessionState(enum.Enum):
    """Life of a participant's peer connection."""

    NEW = "new"  # opened, no offer applied yet
    CONNECTING = "connecting"  # answer given, ICE/DTLS in progress
    CONNECTED = "connected"  # media flows
    CLOSED = "closed"


class CloseReason(enum.Enum):
    """Why a session ended."""

    CLOSED = "closed"  # Session.close() / Sfu.close_room() by the application
    REPLACED = "replaced"  # the same user opened a new session in the room
    PEER_LEFT = "peer_left"  # the peer closed its connection (DTLS close)
    FAILED = "failed"  # ICE or DTLS failed, or consent expired
    CONNECT_TIMEOUT = "connect_timeout"
    SILENT = "silent"  # nothing received for silence_timeout
    SHUTDOWN = "shutdown"  # Sfu.close()


@dataclass(frozen=True)
class SessionClosed:
    """Told to the ``on_closed`` callback of :meth:`Sfu.open` once per session."""

    room_id: str
    user_id: str
    reason: CloseReason


@dataclass(frozen=True)
class ActiveSpeakers:
    """Speaking users of a room, loudest first, with their smoothed level (-dBov)."""

    room_id: str
    user_ids: tuple[str, ...]
    levels_dbov: tuple[float, ...]


@dataclass(frozen=True)
class IceCandidateInit:
    """A trickled ICE candidate as the browser's RTCIceCandidateInit."""

    candidate: str
    sdp_mid: str | None = None
    sdp_mline_index: int | None = None

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> IceCandidateInit:
        """From ``{"candidate": ..., "sdpMid": ..., "sdpMLineIndex": ...}``."""
        candidate = value.get("candidate")
        mid = value.get("sdpMid")
        index = value.get("sdpMLineIndex")
        if not isinstance(candidate, str):
            raise ValueError("candidate must be a string")
        if mid is not None and not isinstance(mid, str):
            raise ValueError("sdpMid must be a string")
        if index is not None and (not isinstance(index, int) or isinstance(index, bool)):
            raise ValueError("sdpMLineIndex must be an integer")
        return cls(candidate=candidate, sdp_mid=mid, sdp_mline_index=index)
