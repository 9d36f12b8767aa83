"""Fails loudly when aiortc/aioice change under signaling.sfu.aiortc_internals."""

from __future__ import annotations

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpReceiver

from signaling.sfu import aiortc_internals as internals


def test_internals_are_where_we_expect_them() -> None:
    internals.verify_internals()


def test_verify_detects_a_change(monkeypatch: pytest.MonkeyPatch) -> None:
    async def moved(self: object, packet: object) -> None:
        return None

    monkeypatch.setattr(RTCRtpReceiver, "_handle_rtp_packet", moved)
    with pytest.raises(internals.AiortcInternalsChanged, match="_handle_rtp_packet"):
        internals.verify_internals()


async def test_gathers_on_loopback_in_port_range_and_announces_public_ip() -> None:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("audio", direction="recvonly")
    try:
        await internals.gather_host_candidates(
            pc, ["127.0.0.1"], public_ip="203.0.113.7", port_range=(41000, 41010)
        )
        conn = internals.ice_connection(pc)
        assert conn is not None
        [candidate] = conn.local_candidates
        assert candidate.type == "host" and candidate.host == "203.0.113.7"
        assert 41000 <= candidate.port <= 41010
        [protocol] = conn._protocols
        assert protocol.transport.get_extra_info("sockname") == ("127.0.0.1", candidate.port)
        # aiortc's own gathering is now a no-op and the SDP carries our candidate.
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
        assert f"203.0.113.7 {candidate.port} typ host" in sdp
        assert "a=end-of-candidates" in sdp
    finally:
        await pc.close()


async def test_default_addresses_skip_loopback() -> None:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("audio", direction="recvonly")
    try:
        await internals.gather_host_candidates(pc, [])
        conn = internals.ice_connection(pc)
        assert conn is not None
        assert all(c.host != "127.0.0.1" for c in conn.local_candidates)
    finally:
        await pc.close()


async def test_port_range_exhausted() -> None:
    pcs = [RTCPeerConnection(RTCConfiguration(iceServers=[])) for _ in range(2)]
    for pc in pcs:
        pc.addTransceiver("audio", direction="recvonly")
    try:
        await internals.gather_host_candidates(pcs[0], ["127.0.0.1"], port_range=(41020, 41020))
        with pytest.raises(OSError):
            await internals.gather_host_candidates(pcs[1], ["127.0.0.1"], port_range=(41020, 41020))
    finally:
        for pc in pcs:
            await pc.close()
