"""Pieces shared by the coordinator, the worker processes and the driver.

Clocks: every process of a run is on one machine and stamps with ``time.time()``
(the same system clock), so a latency is ``arrival - send`` across processes.
"""

from __future__ import annotations

import math
import resource
import struct
from collections.abc import Sequence
from typing import Final

from signaling.protocol import schema as s

# Event tags that bump the room's public `version` and reach everyone.
PUBLIC_EVENTS: Final = frozenset(
    tag for cls, tag in s.EVENT_TYPES.items() if cls.visibility.value == "public"
)

# Synthetic Opus-like audio: 50 packets a second, ~60-byte payloads carrying
# magic, flags, speaker index, sequence number and the send time (time.time_ns()).
PPS: Final = 50
PAYLOAD: Final = struct.Struct("!BBHIq")
PAYLOAD_SIZE: Final = 60
MAGIC: Final = 0xA7
COUNTED: Final = 0x01  # sent while the speaker was settled on stage: every listener expects it
LATE_MS: Final = 200.0  # later than this after sending: past a typical jitter buffer
MEDIA_SETTLE: Final = 0.5  # seconds after a listener's or speaker's media is up before counting


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def rtp_payload_offset(data: bytes) -> int:
    """Where the payload of an RTP packet starts (after CSRCs and header extension)."""
    offset = 12 + 4 * (data[0] & 0x0F)
    if data[0] & 0x10 and len(data) >= offset + 4:
        offset += 4 + 4 * int.from_bytes(data[offset + 2 : offset + 4], "big")
    return offset


def quantile(ordered: Sequence[float], q: float) -> float | None:
    """The q-quantile of sorted values (nearest rank), None when empty."""
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return float(ordered[index])


def source_addresses(count: int) -> list[str]:
    """Loopback source addresses 127.0.0.2, 127.0.0.3, ... (all of 127/8 is on lo)."""
    return [f"127.0.{(i + 2) // 256}.{(i + 2) % 256}" for i in range(count)]
