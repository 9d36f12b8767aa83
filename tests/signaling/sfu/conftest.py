"""Real aiortc peers on 127.0.0.1 against a real Sfu, in the test process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from signaling.sfu import Session, Sfu, SfuSettings, SlotPolicy
from signaling.sfu.client import AudioPeer

LOOPBACK = ("127.0.0.1",)


def make_settings(**overrides: object) -> SfuSettings:
    base: dict[str, object] = {
        "ice_gather_addresses": LOOPBACK,
        "tick_interval": 0.05,
        "slot_policy": SlotPolicy(margin=6.0, min_hold=0.3),
        "rtcp_interval": 0.3,
    }
    base.update(overrides)
    return SfuSettings(**base)  # type: ignore[arg-type]


@pytest.fixture
async def sfu() -> AsyncIterator[Sfu]:
    instance = Sfu(make_settings())
    yield instance
    await instance.close()


async def eventually(predicate: Callable[[], bool], limit: float = 8.0) -> None:
    """Wait until ``predicate()`` holds, polling; fail after ``limit`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)


async def join(sfu: Sfu, room: str, user: str, *, send: bool = False) -> tuple[AudioPeer, Session]:
    """Connect a listener (and, with ``send``, add its send track by renegotiation)."""
    peer = AudioPeer(slots=sfu.settings.audio_slots, gather_addresses=LOOPBACK)
    session = await sfu.open(room, user)
    await peer.accept(await session.apply_offer(await peer.offer()))
    await peer.wait_connected()
    await eventually(lambda: session.state.value == "connected")
    if send:
        await promote_client(peer, session)
    return peer, session


async def promote_client(peer: AudioPeer, session: Session) -> None:
    await peer.accept(await session.apply_offer(await peer.offer_send()))
    # The server receiver is hooked once aiortc's connect task ran.
    await asyncio.sleep(0.05)


async def talk(
    peer: AudioPeer, tag: str, count: int, level: int, gap: float = 0.005
) -> list[bytes]:
    """Send ``count`` packets with payloads ``tag:i``; returns the payloads."""
    payloads = []
    for i in range(count):
        payload = f"{tag}:{i}".encode()
        peer.send_audio(payload, level)
        payloads.append(payload)
        await asyncio.sleep(gap)
    return payloads


def payloads_of(peer: AudioPeer, tag: str) -> list[bytes]:
    prefix = f"{tag}:".encode()
    return [p.payload for p in peer.received if p.payload.startswith(prefix)]
