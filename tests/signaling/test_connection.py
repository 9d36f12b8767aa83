"""The send side of one connection: bounded, never awaiting, coalescing first."""

from __future__ import annotations

import asyncio
from typing import Any

from chatrooms.ids import RoomId, UserId
from signaling.auth import Identity
from signaling.connection import Connection, ConnState, Counters
from signaling.protocol.codec import WireFormat
from signaling.protocol.schema import Ack, Pong, RoomStats


class Transport:
    def __init__(self) -> None:
        self.frames: list[Any] = []
        self.closed: tuple[int, bytes] | None = None
        self.gate = asyncio.Event()
        self.gate.set()

    async def send(self, frame: Any) -> None:
        await self.gate.wait()
        self.frames.append(frame)

    async def close(self, code: int, message: bytes) -> None:
        self.closed = (code, message)


def _conn(t: Transport, counters: Counters, **kw: Any) -> Connection:
    conn = Connection(
        send_frame=t.send,
        close_transport=t.close,
        fmt=WireFormat.JSON,
        identity=Identity(UserId("u"), "U"),
        room_id=RoomId("r"),
        counters=counters,
        queue_size=kw.get("queue_size", 8),
        coalesce_drop_at=kw.get("coalesce_drop_at", 4),
        commands_per_second=10,
        command_burst=5,
        write_now=kw.get("write_now"),
    )
    conn.state = ConnState.LIVE
    return conn


def _stats(n: int) -> RoomStats:
    return RoomStats(listeners=n, queue_length=0, version=1)


async def test_coalescible_updates_replace_each_other() -> None:
    t, counters = Transport(), Counters()
    t.gate.clear()  # the client is not reading
    conn = _conn(t, counters)
    for n in range(5):
        conn.send(_stats(n))
    t.gate.set()
    await asyncio.sleep(0.05)
    stats = [f for f in t.frames if "room_stats" in f]
    assert len(stats) <= 2 and '"listeners":4' in stats[-1]
    assert counters.coalesced_dropped >= 3


async def test_behind_clients_lose_coalescible_first_then_are_cut_off() -> None:
    t, counters = Transport(), Counters()
    t.gate.clear()
    conn = _conn(t, counters, queue_size=8, coalesce_drop_at=4)
    for i in range(5):
        conn.send(Pong(id=i))
    conn.send(_stats(1))  # backlog above coalesce_drop_at: dropped, connection kept
    assert counters.coalesced_dropped == 1 and conn.state is ConnState.LIVE
    for i in range(5, 9):
        conn.send(Pong(id=i))
    assert conn.state is ConnState.CLOSING and counters.slow_consumers == 1
    # Replies to a command in flight still go out; nothing else does.
    conn.send(Ack(id=77))
    conn.send(Pong(id=100))
    t.gate.set()
    await conn.wait_closed()
    assert t.closed is not None and t.closed[0] == 4008
    assert '"ack"' in t.frames[-2] and '"slow_consumer"' in t.frames[-1]
    assert not any('"id":100' in f for f in t.frames)


async def test_send_never_awaits_a_stalled_client() -> None:
    t, counters = Transport(), Counters()
    t.gate.clear()
    conn = _conn(t, counters, queue_size=10_000)
    for i in range(5_000):
        conn.send(Pong(id=i))  # returns at once: a stalled transport blocks only the writer
    assert conn.backlog >= 4_999
    conn.abort()


async def test_with_nothing_queued_a_frame_goes_straight_to_the_transport() -> None:
    t, counters = Transport(), Counters()
    direct: list[Any] = []
    takes = [True]

    def write_now(frame: Any) -> bool:
        if takes[0]:
            direct.append(frame)
        return takes[0]

    conn = _conn(t, counters, write_now=write_now)
    await asyncio.sleep(0)  # the writer starts and waits for work
    conn.send(Pong(id=1))
    assert len(direct) == 1 and not t.frames  # written within send(), no task switch
    takes[0] = False  # the socket has unsent bytes: the writer takes over
    conn.send(Pong(id=2))
    takes[0] = True
    conn.send(_stats(3))  # 2 is waiting: this one goes behind it, not around it
    conn.send(Pong(id=4))
    assert len(direct) == 1
    await asyncio.sleep(0.01)
    assert ['"id":2' in t.frames[0], '"listeners":3' in t.frames[2]] == [True, True]
    assert '"id":4' in t.frames[1] and len(t.frames) == 3
    conn.send(Pong(id=5))  # all written: straight again
    assert len(direct) == 2 and counters.frames_out == 5
    conn.abort()


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    from signaling.connection import TokenBucket

    bucket = TokenBucket(rate=10, burst=5)
    assert [bucket.take(0.0) for _ in range(6)] == [True] * 5 + [False]
    assert bucket.take(0.1) is True and bucket.take(0.1) is False
