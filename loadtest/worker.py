"""A worker process: listener bots (signaling only) and media listeners (also audio
over WebRTC, never decoded), on uvloop.

The coordinator hands each worker its bots and the ramp; the worker reports progress
every second and, when told to stop, one result with everything it measured.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import functools
import gc
import signal
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from loadtest import wsclient
from loadtest.bot import Bot, JoinStats, Message
from loadtest.common import (
    COUNTED,
    LATE_MS,
    MAGIC,
    MEDIA_SETTLE,
    PAYLOAD,
    PUBLIC_EVENTS,
    raise_fd_limit,
    rtp_payload_offset,
)

MEDIA_SETUP_CONCURRENCY = 4
MEDIA_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class BotSpec:
    index: int  # global index: its place in the ramp
    media: bool
    room: int  # index into WorkerPlan.rooms
    url_index: int
    source: str  # local address to connect from
    token: str | None  # None: join as a guest


@dataclass(frozen=True, slots=True)
class WorkerPlan:
    worker: int
    urls: tuple[str, ...]
    rooms: tuple[str, ...]
    bots: tuple[BotSpec, ...]
    ramp: float  # joins per second, over all workers
    local_ports: tuple[int, int]  # [low, high): this worker's own local TCP ports


@dataclass
class AudioStats:
    received: int = 0  # counted packets in a listener's window
    late: int = 0
    other: int = 0  # packets outside windows or not counted
    # windows per media listener: (room, start, end) ; end -1 while open
    windows: list[tuple[int, float, float]] = field(default_factory=list)
    # latency (ms) by second of send time
    latency: dict[int, array.array[float]] = field(
        default_factory=lambda: defaultdict(lambda: array.array("f"))
    )
    ready: int = 0
    live: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    restarts: int = 0
    closed: Counter[str] = field(default_factory=Counter)  # rtc_closed reasons


@dataclass
class EventLog:
    """PUBLIC events received by this process's listeners: arrival times by (room, version)."""

    arrivals: dict[tuple[int, int], array.array[float]] = field(
        default_factory=lambda: defaultdict(lambda: array.array("d"))
    )
    # version of the room in each listener's first `joined`
    bases: dict[int, array.array[int]] = field(
        default_factory=lambda: defaultdict(lambda: array.array("q"))
    )


class Listener(Bot):
    def __init__(self, spec: BotSpec, events: EventLog, **kw: Any) -> None:
        super().__init__(**kw)
        self.spec = spec
        self.events = events

    def on_joined(self, msg: Message, again: bool) -> None:
        if not again:
            self.events.bases[self.spec.room].append(self.version)

    def on_message(self, msg: Message, now: float) -> None:
        kind = msg.get("type")
        if kind in PUBLIC_EVENTS:
            self.events.arrivals[(self.spec.room, int(msg["version"]))].append(now)


class MediaListener(Listener):
    """A listener that also sets up a peer connection and counts the audio it gets."""

    def __init__(
        self, spec: BotSpec, events: EventLog, audio: AudioStats, gate: asyncio.Semaphore, **kw: Any
    ) -> None:
        super().__init__(spec, events, **kw)
        self.audio = audio
        self.gate = gate
        self.peer: Any = None
        self.window: int = -1  # index in audio.windows while open
        self.window_start = 0.0
        self.task: asyncio.Task[None] | None = None

    def on_joined(self, msg: Message, again: bool) -> None:
        super().on_joined(msg, again)
        slots = int(msg["media"]["audio_slots"])
        self.task = asyncio.create_task(self._media(slots))

    def on_message(self, msg: Message, now: float) -> None:
        super().on_message(msg, now)
        if msg.get("type") == "rtc_closed" and not self.stop.is_set():
            self.audio.restarts += 1
            self.audio.closed[str(msg.get("reason"))] += 1
            self._end_window(now)
            self.task = asyncio.create_task(self._media(self.peer.slots if self.peer else 3))

    def on_dropped(self, now: float) -> None:
        self._end_window(now)
        peer, self.peer = self.peer, None
        if peer is not None:
            asyncio.create_task(peer.close())  # noqa: RUF006 - bounded by aiortc

    def _end_window(self, now: float) -> None:
        if self.window >= 0:
            room, start, _ = self.audio.windows[self.window]
            self.audio.windows[self.window] = (room, start, now)
            self.window = -1
            self.audio.live -= 1

    def end(self, at: float) -> None:
        self._end_window(at)

    async def _media(self, slots: int) -> None:
        from signaling.sfu import aiortc_internals as internals
        from signaling.sfu.client import AudioPeer

        old, self.peer = self.peer, None
        if old is not None:
            with contextlib.suppress(Exception):
                await old.close()
        async with self.gate:
            if self.stop.is_set() or self.ws is None:
                return
            peer = AudioPeer(slots=slots, gather_addresses=("127.0.0.1",), keep_packets=False)
            self.peer = peer
            try:
                answer = await self.call("rtc_offer", limit=MEDIA_TIMEOUT, sdp=await peer.offer())
                if answer.get("type") != "rtc_answer":
                    self.audio.failed[str(answer.get("code"))] += 1
                    return
                await peer.accept(str(answer["sdp"]))
                await peer.wait_connected(MEDIA_TIMEOUT)
            except (ConnectionError, TimeoutError, OSError, ValueError) as exc:
                self.audio.failed[type(exc).__name__] += 1
                with contextlib.suppress(Exception):
                    await peer.close()
                if self.peer is peer:
                    self.peer = None
                return
        if self.peer is not peer:
            return
        uninstall = internals.install_fast_receive(peer.pc, self._on_rtp)
        if uninstall is None:
            self.audio.failed["no_fast_path"] += 1
            return
        self.audio.ready += 1
        self.audio.live += 1
        self.window_start = time.time() + MEDIA_SETTLE
        self.window = len(self.audio.windows)
        self.audio.windows.append((self.spec.room, self.window_start, -1.0))

    def _on_rtp(self, data: bytes) -> None:
        now = time.time()
        try:
            offset = rtp_payload_offset(data)
            magic, flags, _speaker, _seq, sent_ns = PAYLOAD.unpack_from(data, offset)
        except (IndexError, ValueError, Exception):
            self.audio.other += 1
            return
        sent = sent_ns / 1e9
        if magic != MAGIC or not flags & COUNTED or self.window < 0 or sent < self.window_start:
            self.audio.other += 1
            return
        audio = self.audio
        audio.received += 1
        latency = (now - sent) * 1000.0
        if latency > LATE_MS:
            audio.late += 1
        audio.latency[int(sent)].append(latency)


def worker_main(conn: Connection, plan: WorkerPlan) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the coordinator stops us
    raise_fd_limit()
    import uvloop

    uvloop.run(_worker(conn, plan))


async def _poll(conn: Connection) -> Any | None:
    if conn.poll():
        try:
            return conn.recv()
        except EOFError:
            return ("stop", time.time())
    return None


async def _worker(conn: Connection, plan: WorkerPlan) -> None:
    stats = JoinStats()
    events = EventLog()
    audio = AudioStats()
    stop = asyncio.Event()
    gate = asyncio.Semaphore(MEDIA_SETUP_CONCURRENCY)
    bots: list[Listener] = []
    ports = wsclient.LocalPorts(*plan.local_ports)
    for spec in plan.bots:
        kw: dict[str, Any] = {
            "name": f"{'media' if spec.media else 'listener'}-{spec.index}",
            "room_id": plan.rooms[spec.room],
            "urls": plan.urls,
            "url_index": spec.url_index,
            "token": spec.token,
            "connect": functools.partial(wsclient.connect, source=spec.source, ports=ports),
            "stats": stats,
            "stop": stop,
        }
        if spec.media:
            bots.append(MediaListener(spec, events, audio, gate, **kw))
        else:
            bots.append(Listener(spec, events, **kw))

    gc.collect()
    gc.freeze()
    conn.send(("ready", plan.worker))
    go = None
    limit = time.time() + 600.0
    while go is None and time.time() < limit:
        go = await _poll(conn)
        await asyncio.sleep(0.02)
    if go is None or go[0] != "go":
        return
    t0, deadline = float(go[1]), float(go[2])

    async def start(bot: Listener) -> None:
        at = t0 + bot.spec.index / plan.ramp
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, at - time.time()))
        if not stop.is_set():
            await bot.run()

    tasks = [asyncio.create_task(start(bot)) for bot in bots]
    audio_end = time.time()
    last_progress = 0.0
    try:
        while time.time() < deadline:
            message = await _poll(conn)
            if message is not None and message[0] == "stop":
                audio_end = float(message[1])
                break
            now = time.time()
            if now - last_progress >= 1.0:
                last_progress = now
                conn.send(("progress", plan.worker, _progress(stats, audio)))
                # What has lived a second (the bots' connections) leaves the collector's
                # full passes: on the growing heap of thousands of connections each one
                # stalled this process for 0.3-0.7 s and freed nothing (a bounded run
                # keeps the rare cycle among frozen objects till it ends).
                gc.freeze()
            await asyncio.sleep(0.05)
        else:
            audio_end = time.time()
    finally:
        stop.set()
        for bot in bots:
            if isinstance(bot, MediaListener):
                bot.end(audio_end)
        await asyncio.gather(
            *(asyncio.wait_for(bot.close(), 5.0) for bot in bots), return_exceptions=True
        )
        await asyncio.wait(tasks, timeout=10.0) if tasks else None
        for task in tasks:
            task.cancel()
        peers = [b.peer for b in bots if isinstance(b, MediaListener) and b.peer is not None]
        await asyncio.gather(
            *(asyncio.wait_for(p.close(), 5.0) for p in peers), return_exceptions=True
        )
    conn.send(("result", plan.worker, _result(stats, events, audio)))


def _progress(stats: JoinStats, audio: AudioStats) -> dict[str, Any]:
    return {
        "attempted": stats.attempted,
        "succeeded": stats.succeeded,
        "joined": stats.joined_bots,
        "gave_up": stats.gave_up,
        "failed": sum(stats.failed.values()),
        "live": stats.live,
        "reconnected": stats.reconnected,
        "media_ready": audio.ready,
        "media_live": audio.live,
        "cpu_s": time.process_time(),
        "audio_received": audio.received,
    }


def _result(stats: JoinStats, events: EventLog, audio: AudioStats) -> dict[str, Any]:
    return {
        "attempted": stats.attempted,
        "succeeded": stats.succeeded,
        "failed": dict(stats.failed),
        "join_ms": stats.join_ms.tobytes(),
        "joined": stats.joined_bots,
        "last_first_join": stats.last_first_join,
        "gave_up": stats.gave_up,
        "drops": stats.drops,
        "reconnected": stats.reconnected,
        "reconnects": stats.reconnects,
        "gaps": stats.gaps,
        "byes": dict(stats.byes),
        "arrivals": {k: v.tobytes() for k, v in events.arrivals.items()},
        "bases": {k: v.tobytes() for k, v in events.bases.items()},
        "audio": {
            "received": audio.received,
            "late": audio.late,
            "other": audio.other,
            "windows": audio.windows,
            "latency": {k: v.tobytes() for k, v in audio.latency.items()},
            "ready": audio.ready,
            "failed": dict(audio.failed),
            "restarts": audio.restarts,
            "closed": dict(audio.closed),
        },
    }
