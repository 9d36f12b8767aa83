"""End to end with real aiortc peers over 127.0.0.1: forwarding, slots, stage changes."""

from __future__ import annotations

import asyncio
import itertools

from aiortc.rtp import RtcpRrPacket, RtcpSrPacket

from signaling.sfu import Sfu
from signaling.sfu.client import ReceivedPacket

from .conftest import eventually, join, payloads_of, promote_client, talk


def assert_continuous(packets: list[ReceivedPacket]) -> None:
    """One stream: one SSRC, sequence numbers +1 each, timestamps advancing."""
    assert len({p.ssrc for p in packets}) == 1
    for a, b in itertools.pairwise(packets):
        assert (b.sequence_number - a.sequence_number) & 0xFFFF == 1
        step = (b.timestamp - a.timestamp) & 0xFFFFFFFF
        assert 0 < step < 1 << 31


async def test_speaker_heard_byte_identical_in_order_on_one_stream(sfu: Sfu) -> None:
    speaker, _ = await join(sfu, "r", "spk", send=True)
    listeners = [await join(sfu, "r", f"l{i}") for i in range(2)]
    sfu.set_audible("r", "spk", True)
    sent = await talk(speaker, "spk", 80, level=20)
    for peer, _ in listeners:
        await eventually(lambda p=peer: len(payloads_of(p, "spk")) == len(sent))
        assert payloads_of(peer, "spk") == sent  # byte-identical, in order, none lost
        slot0 = peer.packets_in_slot(0)
        assert len(slot0) == len(sent)
        assert_continuous(slot0)
        assert all(p.payload_type == 96 for p in slot0)  # the listener's Opus PT
        assert [p.timestamp - slot0[0].timestamp for p in slot0[:3]] == [0, 960, 1920]
        assert slot0[0].marker and not any(p.marker for p in slot0[1:])
    # Every listener gets the same slot stream (serialized once).
    a, b = (peer.packets_in_slot(0) for peer, _ in listeners)
    assert [(p.ssrc, p.sequence_number, p.timestamp) for p in a] == [
        (p.ssrc, p.sequence_number, p.timestamp) for p in b
    ]
    assert speaker.received == []  # the speaker does not hear itself
    for peer, _ in [*listeners, (speaker, None)]:
        await peer.close()


async def test_loudest_speakers_take_the_slots(sfu: Sfu) -> None:
    quiet, _ = await join(sfu, "r", "quiet", send=True)
    loud = [await join(sfu, "r", f"loud{i}", send=True) for i in range(3)]
    listener, _ = await join(sfu, "r", "listener")
    sfu.set_audible("r", "quiet", True)
    await talk(quiet, "quiet", 10, level=90)  # alone: it takes a slot at once
    for i in range(3):
        sfu.set_audible("r", f"loud{i}", True)

    async def everyone(rounds: int) -> None:
        for _ in range(rounds):
            quiet.send_audio(b"quiet:x", 90)
            for i, (peer, _) in enumerate(loud):
                peer.send_audio(f"loud{i}:x".encode(), 10 + i)
            await asyncio.sleep(0.01)

    forwarder = sfu.forwarder("r")
    assert forwarder is not None
    loud_ids = {"loud0", "loud1", "loud2"}
    await everyone(20)
    for _ in range(100):  # bounded: the quiet speaker must lose its slot
        if set(forwarder.slot_holders()) == loud_ids:
            break
        await everyone(5)
    assert set(forwarder.slot_holders()) == loud_ids
    mark = len(listener.received)
    await everyone(30)
    await eventually(lambda: len(listener.received) >= mark + 60)
    heard = {p.payload.split(b":")[0] for p in listener.received[mark:]}
    assert heard == {b"loud0", b"loud1", b"loud2"}
    # Through the switch every slot stayed one continuous stream.
    for slot in range(3):
        packets = listener.packets_in_slot(slot)
        assert packets
        assert_continuous(packets)
    for peer in [quiet, listener, *(p for p, _ in loud)]:
        await peer.close()


async def test_promotion_and_demotion_without_reconnect(sfu: Sfu) -> None:
    listener, _ = await join(sfu, "r", "audience")
    guest, guest_session = await join(sfu, "r", "guest")
    pc = guest_session.peer_connection
    sockets_before = [
        p.transport
        for p in pc.getTransceivers()[0].receiver.transport.transport._connection._protocols
    ]

    # A listener who adds a send track and sends is not heard.
    await promote_client(guest, guest_session)
    await talk(guest, "before", 20, level=10)
    # Promotion: the server makes the guest audible; the same connection carries it.
    sfu.set_audible("r", "guest", True)
    sent = await talk(guest, "onstage", 30, level=10)
    await eventually(lambda: len(payloads_of(listener, "onstage")) == len(sent))
    assert payloads_of(listener, "before") == []
    assert payloads_of(listener, "onstage") == sent
    # Muted (or moved back): dropped at once, whatever the browser keeps sending.
    sfu.set_audible("r", "guest", False)
    await talk(guest, "muted", 20, level=10)
    # Back on stage, then the client also stops its track (renegotiation).
    sfu.set_audible("r", "guest", True)
    again = await talk(guest, "again", 20, level=10)
    await eventually(lambda: len(payloads_of(listener, "again")) == len(again))
    assert payloads_of(listener, "muted") == []
    await guest.accept(await guest_session.apply_offer(await guest.offer_stop_send()))
    # Never reconnected: same session, same peer connection, same ICE sockets.
    assert sfu.session("r", "guest") is guest_session
    assert guest_session.peer_connection is pc
    after = [
        p.transport
        for p in pc.getTransceivers()[0].receiver.transport.transport._connection._protocols
    ]
    assert after == sockets_before
    assert guest_session.state.value == "connected"
    assert_continuous(listener.packets_in_slot(0))
    await listener.close()
    await guest.close()


async def test_nobody_hears_themselves(sfu: Sfu) -> None:
    a, _ = await join(sfu, "r", "a", send=True)
    b, _ = await join(sfu, "r", "b", send=True)
    sfu.set_audible("r", "a", True)
    sfu.set_audible("r", "b", True)
    for _ in range(30):
        a.send_audio(b"a:x", 20)
        b.send_audio(b"b:x", 20)
        await asyncio.sleep(0.005)
    await eventually(lambda: len(payloads_of(a, "b")) == 30 and len(payloads_of(b, "a")) == 30)
    assert payloads_of(a, "a") == [] and payloads_of(b, "b") == []
    await a.close()
    await b.close()


async def test_rtcp_sender_reports_and_receiver_reports(sfu: Sfu) -> None:
    speaker, speaker_session = await join(sfu, "r", "spk", send=True)
    listener, _ = await join(sfu, "r", "lis")
    sfu.set_audible("r", "spk", True)
    forwarder = sfu.forwarder("r")
    assert forwarder is not None
    slot_ssrc = forwarder.slots[0].ssrc

    def sender_reports() -> list[RtcpSrPacket]:
        return [p for p in listener.rtcp if isinstance(p, RtcpSrPacket) and p.ssrc == slot_ssrc]

    def receiver_reports() -> list[RtcpRrPacket]:
        return [p for p in speaker.rtcp if isinstance(p, RtcpRrPacket) and p.reports]

    for _ in range(200):  # bounded: RTCP goes out every ~0.3 s here
        speaker.send_audio(b"spk:x", 20)
        await asyncio.sleep(0.01)
        if sender_reports() and receiver_reports():
            break
    sr = sender_reports()[-1]
    assert 0 < sr.sender_info.packet_count <= forwarder.stats.packets_forwarded
    rr = receiver_reports()[-1].reports[0]
    assert rr.packets_lost == 0 and rr.fraction_lost == 0
    await speaker.close()
    await listener.close()
    assert speaker_session is not None
