"""RTP helpers on recorded / constructed bytes."""

from __future__ import annotations

import pytest
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from signaling.sfu.client import audio_level_extension
from signaling.sfu.rtp import AudioLevel, pack_header, parse_audio_level, seq_diff

# An Opus packet as Chrome sends it (ids of Chrome's offer: 1 = ssrc-audio-level,
# 4 = sdes:mid), one-byte extension form: V=2 X=1, PT 111, seq 0x1a2b,
# ts 0x00bc614e, SSRC 0x4d2c3b1a; level: voice, 37 -dBov; mid "0"; 3 payload bytes.
CHROME_PACKET = bytes.fromhex(
    "906f1a2b00bc614e4d2c3b1a"  # header
    "bede0001"  # one-byte extensions, 1 word
    "10a5"  # id 1, len 1: V=1, level 37
    "4030"  # id 4, len 1: "0"
    "fcfffe"  # Opus TOC + data
)


def test_chrome_packet_level() -> None:
    assert parse_audio_level(CHROME_PACKET, 1) == AudioLevel(voice=True, level=37)
    assert parse_audio_level(CHROME_PACKET, 2) is None  # not negotiated under that id
    # aiortc reads the same bytes the same way.
    params = RTCRtpParameters(
        headerExtensions=[
            RTCRtpHeaderExtensionParameters(
                id=1, uri="urn:ietf:params:rtp-hdrext:ssrc-audio-level"
            ),
            RTCRtpHeaderExtensionParameters(id=4, uri="urn:ietf:params:rtp-hdrext:sdes:mid"),
        ]
    )
    ext_map = HeaderExtensionsMap()
    ext_map.configure(params)
    packet = RtpPacket.parse(CHROME_PACKET, ext_map)
    assert packet.extensions.audio_level == (True, 37)
    assert packet.extensions.mid == "0"
    assert packet.payload == bytes.fromhex("fcfffe")


def test_level_after_other_extension_and_padding() -> None:
    data = bytes.fromhex("9060000100000001000000aabede000241aabb0020090000") + b"x"
    # id 4 len 2, a padding byte, then id 2 len 1 = level 9, no voice bit
    assert parse_audio_level(data, 2) == AudioLevel(voice=False, level=9)
    assert AudioLevel(voice=False, level=9).loudness == 118


def test_two_byte_form() -> None:
    data = bytes.fromhex("9060000100000001000000aa100000020301ff0000000000")
    # two-byte header: id 3, len 1, value 0xff -> voice, level 127
    assert parse_audio_level(data, 3) == AudioLevel(voice=True, level=127)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        bytes.fromhex("8060000100000001000000aa") + b"payload",  # no extension bit
        bytes.fromhex("9060000100000001000000aabede000210"),  # truncated block
        bytes.fromhex("9060000100000001000000aabede0001f0550000"),  # reserved id 15
        bytes.fromhex("9060000100000001000000aaabcd000110550000"),  # unknown profile
        bytes.fromhex("5060000100000001000000aabede000110550000"),  # version 1
        bytes.fromhex("9060000100000001000000aabede000100001300"),  # len runs past
    ],
)
def test_no_level(data: bytes) -> None:
    assert parse_audio_level(data, 1) is None


def test_level_extension_round_trip() -> None:
    header = bytearray(
        pack_header(
            marker=True,
            payload_type=111,
            sequence_number=65535,
            timestamp=2**32 - 1,
            ssrc=0xDEADBEEF,
        )
    )
    header[0] |= 0x10
    data = bytes(header) + audio_level_extension(3, 42, voice=False) + b"opus"
    assert parse_audio_level(data, 3) == AudioLevel(voice=False, level=42)
    packet = RtpPacket.parse(data)
    assert (packet.marker, packet.payload_type, packet.sequence_number) == (1, 111, 65535)
    assert (packet.timestamp, packet.ssrc, packet.payload) == (2**32 - 1, 0xDEADBEEF, b"opus")
    with pytest.raises(ValueError):
        audio_level_extension(15, 1)


def test_seq_diff_wraps() -> None:
    assert seq_diff(1, 65535) == 2
    assert seq_diff(65535, 1) == -2
    assert seq_diff(100, 100) == 0
    assert seq_diff(0x8000 + 5, 5) == -32768
