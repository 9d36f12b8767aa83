"""Sessions come and go and leave nothing behind; failures and silence close them."""

from __future__ import annotations

import asyncio
import gc
import itertools
import os
import threading

import pytest
from aiortc import RTCPeerConnection

from signaling.sfu import (
    ActiveSpeakers,
    CloseReason,
    IceCandidateInit,
    OfferError,
    SessionClosed,
    Sfu,
)
from signaling.sfu import aiortc_internals as internals
from signaling.sfu.client import AudioPeer

from .conftest import LOOPBACK, eventually, join, make_settings, payloads_of, talk


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def peer_connections() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, RTCPeerConnection))


def tasks() -> int:
    return len(asyncio.all_tasks())


async def one_round(sfu: Sfu, tag: str, threads: int) -> None:
    speaker, speaker_session = await join(sfu, "r", "spk", send=True)
    listeners = [await join(sfu, "r", f"l{i}") for i in range(3)]
    sfu.set_audible("r", "spk", True)
    sent = await talk(speaker, tag, 20, level=20)
    for peer, _ in listeners:
        await eventually(lambda p=peer: len(payloads_of(p, tag)) == len(sent))
    assert threading.active_count() == threads  # no decoder threads, anywhere
    # Listeners leave from the client side; the speaker is closed by the app.
    for peer, _ in listeners:
        await peer.close()
    await eventually(lambda: [u for u in ("l0", "l1", "l2") if sfu.session("r", u)] == [])
    await speaker.close()
    await speaker_session.close()
    sfu.set_audible("r", "spk", False)


async def test_participants_who_leave_leave_nothing_behind(sfu: Sfu) -> None:
    # Warm up (starts the SFU's single background task), then take the baseline.
    peer, session = await join(sfu, "warm", "w")
    await peer.close()
    await session.close()
    del peer, session
    await eventually(lambda: sfu.room_ids() == [])
    baseline = (tasks(), open_fds(), threading.active_count())
    pcs = peer_connections()

    for round_ in range(2):
        await one_round(sfu, f"round{round_}", baseline[2])
    await eventually(lambda: sfu.room_ids() == [])
    await eventually(lambda: (tasks(), open_fds(), threading.active_count()) == baseline)
    await eventually(lambda: peer_connections() == pcs)


async def test_peer_closing_and_replacement_are_reported() -> None:
    sfu = Sfu(make_settings())
    events: list[SessionClosed] = []
    try:
        peer = AudioPeer(gather_addresses=LOOPBACK)
        session = await sfu.open("r", "u", on_closed=events.append)
        await peer.accept(await session.apply_offer(await peer.offer()))
        await peer.wait_connected()
        await peer.close()  # DTLS close_notify reaches the server
        await eventually(lambda: len(events) == 1)
        assert events[0] == SessionClosed("r", "u", CloseReason.PEER_LEFT)
        assert session.state.value == "closed" and sfu.room_ids() == []

        first = await sfu.open("r", "u", on_closed=events.append)
        second = await sfu.open("r", "u", on_closed=events.append)
        assert events[-1].reason is CloseReason.REPLACED and first.state.value == "closed"
        assert sfu.session("r", "u") is second
    finally:
        await sfu.close()
    assert events[-1].reason is CloseReason.SHUTDOWN


async def test_silent_peer_is_closed() -> None:
    sfu = Sfu(make_settings(silence_timeout=0.5))
    events: list[SessionClosed] = []
    try:
        peer = AudioPeer(gather_addresses=LOOPBACK)
        session = await sfu.open("r", "u", on_closed=events.append)
        await peer.accept(await session.apply_offer(await peer.offer()))
        await peer.wait_connected()
        await eventually(lambda: session.state.value == "connected")
        # The client vanishes without a word: its sockets just stop.
        conn = internals.ice_connection(peer.pc)
        assert conn is not None
        for protocol in conn._protocols:
            protocol.transport.abort()
        await eventually(lambda: len(events) == 1)
        assert events[0].reason is CloseReason.SILENT
        assert sfu.room_ids() == []
        await peer.close()
    finally:
        await sfu.close()


async def test_connect_timeout() -> None:
    sfu = Sfu(make_settings(connect_timeout=0.3))
    events: list[SessionClosed] = []
    try:
        peer = AudioPeer(gather_addresses=LOOPBACK)
        session = await sfu.open("r", "u", on_closed=events.append)
        offer = await peer.offer()
        await peer.close()  # the client never answers ICE checks
        await session.apply_offer(offer)
        await eventually(lambda: len(events) == 1)
        assert events[0].reason in (CloseReason.CONNECT_TIMEOUT, CloseReason.FAILED)
    finally:
        await sfu.close()


async def test_trickled_candidates(sfu: Sfu) -> None:
    peer = AudioPeer(gather_addresses=LOOPBACK)
    session = await sfu.open("r", "u")
    offer = await peer.offer()
    lines = offer.splitlines()
    candidates = [ln[2:] for ln in lines if ln.startswith("a=candidate:")]
    assert candidates
    stripped = "\r\n".join(
        ln for ln in lines if not ln.startswith(("a=candidate:", "a=end-of-candidates"))
    )
    # Candidates may even arrive before the offer (they are kept until it is applied).
    await session.add_candidate(IceCandidateInit(candidates[0], sdp_mid="0", sdp_mline_index=0))
    answer = await session.apply_offer(stripped + "\r\n")
    await session.add_candidate(IceCandidateInit.from_json({"candidate": "", "sdpMid": "0"}))
    assert "127.0.0.1" in answer and "a=end-of-candidates" in answer
    await peer.accept(answer)
    await peer.wait_connected()
    await eventually(lambda: session.state.value == "connected")
    await peer.close()
    with pytest.raises(ValueError):
        IceCandidateInit.from_json({"candidate": 5})


async def test_offers_breaking_the_contract_are_rejected(sfu: Sfu) -> None:
    peer = AudioPeer(slots=2, gather_addresses=LOOPBACK)  # the SFU wants 3
    session = await sfu.open("r", "u")
    with pytest.raises(OfferError, match="exactly 3 recvonly"):
        await session.apply_offer(await peer.offer())
    with pytest.raises(OfferError):
        await session.apply_offer("not sdp")
    await peer.close()
    await session.close()


async def test_active_speakers(sfu: Sfu) -> None:
    updates: list[ActiveSpeakers] = []
    unsubscribe = sfu.on_active_speakers("r", updates.append)
    loud, _ = await join(sfu, "r", "loud", send=True)
    soft, _ = await join(sfu, "r", "soft", send=True)
    sfu.set_audible("r", "loud", True)
    sfu.set_audible("r", "soft", True)
    for _ in range(300):  # bounded
        loud.send_audio(b"x", 10)
        soft.send_audio(b"y", 120)  # below the speaking threshold
        await asyncio.sleep(0.01)
        if updates and updates[-1].user_ids == ("loud",):
            break
    assert updates[-1].room_id == "r" and updates[-1].user_ids == ("loud",)
    assert updates[-1].levels_dbov[0] < 50
    # Silence: the list empties.
    await eventually(lambda: updates[-1].user_ids == ())
    unsubscribe()
    await loud.close()
    await soft.close()


async def test_active_speakers_rate_limit() -> None:
    """At most one update per active_speakers_interval, on a synthetic clock."""
    sfu = Sfu(make_settings(active_speakers_interval=0.25))
    updates: list[ActiveSpeakers] = []
    try:
        sfu.on_active_speakers("r", updates.append)
        forwarder = sfu.forwarder("r")
        assert forwarder is not None
        for user in ("a", "b"):
            forwarder.set_present(user, True)
            forwarder.set_audible(user, True)
        now = 1000.0
        seen = []
        for step in range(40):  # 2 s of 50 ms ticks; the louder one flips every tick
            forwarder.on_rtp("a", step, step * 960, b"x", 5 if step % 2 else 20, now)
            forwarder.on_rtp("b", step, step * 960, b"y", 20 if step % 2 else 5, now)
            sfu._tick(now)
            if step > 2:
                seen.append(forwarder.speaking(50)[0][0])
            now += 0.05
        assert len(set(itertools.pairwise(seen))) > 1  # the order really kept changing
        # Only who talks is news, not the order: one update for the whole 2 s.
        assert len(updates) == 1
        assert set(updates[0].user_ids) == {"a", "b"}
        # Who talks changing (b talks, then is silent, in turns of 0.4 s: longer than the
        # meter's hold): updates, at most 4 a second.
        for step in range(40, 120):
            forwarder.on_rtp("a", step, step * 960, b"x", 20, now)
            if (step // 8) % 2:
                forwarder.on_rtp("b", step, step * 960, b"y", 20, now)
            sfu._tick(now)
            now += 0.05
        assert 4 <= len(updates) - 1 <= 17
    finally:
        await sfu.close()
