"""Pure RTP helpers for the forwarder: header packing, sequence arithmetic and
RFC 6464 audio levels read from raw packet bytes.

No I/O and no aiortc here, so that everything is testable on constructed bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

AUDIO_LEVEL_URI: Final = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
OPUS_CLOCK_RATE: Final = 48_000
RTP_HEADER_LENGTH: Final = 12
#: The quietest RFC 6464 level (-127 dBov), used for silence.
SILENT_LEVEL: Final = 127

_HEADER: Final = struct.Struct("!BBHLL")
_ONE_BYTE_PROFILE: Final = 0xBEDE
_TWO_BYTE_PROFILE_MASK: Final = 0xFFF0
_TWO_BYTE_PROFILE: Final = 0x1000


@dataclass(frozen=True, slots=True)
class AudioLevel:
    """RFC 6464 client-to-mixer audio level: ``level`` is -dBov (0 loudest, 127 silent)."""

    voice: bool
    level: int

    @property
    def loudness(self) -> int:
        """0 for silence up to 127 for full scale: bigger is louder."""
        return SILENT_LEVEL - self.level


def pack_header(
    *, marker: bool, payload_type: int, sequence_number: int, timestamp: int, ssrc: int
) -> bytes:
    """Pack a 12-byte RTP header without CSRCs, extensions or padding."""
    return _HEADER.pack(
        0x80,
        (0x80 if marker else 0) | (payload_type & 0x7F),
        sequence_number & 0xFFFF,
        timestamp & 0xFFFFFFFF,
        ssrc & 0xFFFFFFFF,
    )


def seq_diff(a: int, b: int) -> int:
    """Signed distance ``a - b`` between two 16-bit sequence numbers, in [-32768, 32767]."""
    d = (a - b) & 0xFFFF
    return d - 0x10000 if d >= 0x8000 else d


def parse_audio_level(data: bytes, extension_id: int) -> AudioLevel | None:
    """Read the RFC 6464 audio level from a raw (unprotected) RTP packet.

    Supports the one-byte (RFC 8285 0xBEDE) and two-byte header extension forms.
    Returns None when the packet carries no such extension or is malformed.
    """
    if len(data) < RTP_HEADER_LENGTH or data[0] >> 6 != 2 or not data[0] & 0x10:
        return None
    pos = RTP_HEADER_LENGTH + 4 * (data[0] & 0x0F)
    if len(data) < pos + 4:
        return None
    profile = (data[pos] << 8) | data[pos + 1]
    length = 4 * ((data[pos + 2] << 8) | data[pos + 3])
    pos += 4
    end = pos + length
    if len(data) < end:
        return None
    if profile == _ONE_BYTE_PROFILE:
        while pos < end:
            byte = data[pos]
            if byte == 0:  # padding
                pos += 1
                continue
            x_id = byte >> 4
            x_len = (byte & 0x0F) + 1
            if x_id == 15:  # reserved: stop parsing (RFC 8285 section 4.2)
                return None
            pos += 1
            if pos + x_len > end:
                return None
            if x_id == extension_id:
                return _level(data[pos])
            pos += x_len
        return None
    if profile & _TWO_BYTE_PROFILE_MASK == _TWO_BYTE_PROFILE:
        while pos < end:
            x_id = data[pos]
            if x_id == 0:
                pos += 1
                continue
            if pos + 2 > end:
                return None
            x_len = data[pos + 1]
            pos += 2
            if pos + x_len > end:
                return None
            if x_id == extension_id and x_len >= 1:
                return _level(data[pos])
            pos += x_len
        return None
    return None


def _level(byte: int) -> AudioLevel:
    return AudioLevel(voice=bool(byte & 0x80), level=byte & 0x7F)
