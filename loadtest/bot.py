"""One protocol client (msgpack over the signaling WebSocket) that joins a room, reads
everything the server sends, and reconnects when its connection drops.

Listener bots connect with :mod:`loadtest.wsclient` (``connect``: frames are handled
as they are parsed, no task per frame); the driver's bots use an aiohttp session.
A bot reconnects with the same token (the guest token from ``joined.token`` when it
joined without one), so it keeps its identity and place; it tries another ``--url``,
at random, and after a drop keeps trying for ``RECONNECT_FOR`` seconds. Every wait is
bounded; :attr:`Bot.stop` ends it.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import msgpack

from loadtest.wsclient import LeanWebSocket

Message = dict[str, Any]

CONNECT_TIMEOUT = 15.0
JOIN_TIMEOUT = 15.0
CALL_TIMEOUT = 15.0
MAX_FAILURES = 6  # consecutive failed attempts before a bot gives up ...
RECONNECT_FOR = 30.0  # ... but one that was in the room keeps trying this long after a drop
# its own generator: the run's seeded one (`--seed`) drives the scenario's choices
_URLS = random.Random()
FINAL_BYES = frozenset({"kicked", "banned", "room_ended", "left", "replaced", "join_refused"})


@dataclass
class JoinStats:
    """Join and reconnect figures of the bots of one process."""

    attempted: int = 0
    succeeded: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    join_ms: array.array[float] = field(default_factory=lambda: array.array("d"))
    joined_bots: int = 0  # bots that joined at least once
    last_first_join: float = 0.0  # time.time() of the latest bot's first join
    gave_up: int = 0
    live: int = 0
    drops: int = 0
    reconnected: int = 0
    # (dropped at, back at or -1, url index it dropped from) per drop, time.time()
    reconnects: list[tuple[float, float, int]] = field(default_factory=list)
    gaps: int = 0
    byes: Counter[str] = field(default_factory=Counter)


class Bot:
    """Connect, join, read; on a drop, reconnect (next URL first)."""

    def __init__(
        self,
        *,
        name: str,
        room_id: str,
        urls: Sequence[str],
        url_index: int,
        token: str | None,
        session: Callable[[], aiohttp.ClientSession] | None = None,
        connect: Callable[[str], Awaitable[LeanWebSocket]] | None = None,
        stats: JoinStats,
        stop: asyncio.Event,
    ) -> None:
        self.name = name
        self.room_id = room_id
        self.urls = list(urls)
        self.url_index = url_index
        self.token = token
        if (session is None) == (connect is None):
            raise ValueError("a bot needs a session or a connect, not both")
        self._session = session
        self._connect = connect
        self.stats = stats
        self.stop = stop
        self.ws: aiohttp.ClientWebSocketResponse | LeanWebSocket | None = None
        self.joined: Message | None = None
        self.user_id = ""
        self.version = -1
        self.queue_version = -1
        self._next_id = 1
        self._calls: dict[int, asyncio.Future[Message]] = {}
        self._final = False
        self.ever_joined = False

    # ------------------------------------------------------------------ hooks
    def on_message(self, msg: Message, now: float) -> None:
        """Every message after `joined`."""

    def on_joined(self, msg: Message, again: bool) -> None:
        """A join (again: after a drop) succeeded."""

    def on_dropped(self, now: float) -> None:
        """The connection dropped (not at the end of the run)."""

    # ---------------------------------------------------------------- sending
    async def send(self, msg: Message) -> None:
        ws = self.ws
        if ws is None or ws.closed:
            raise ConnectionError("not connected")
        await ws.send_bytes(msgpack.packb(msg))

    def next_id(self) -> int:
        self._next_id += 1
        return self._next_id

    async def call(self, kind: str, limit: float = CALL_TIMEOUT, **fields: Any) -> Message:
        """Send a command with an id; its ack, error or rtc_answer (raises on a drop)."""
        request_id = self.next_id()
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._calls[request_id] = future
        try:
            await self.send({"type": kind, "id": request_id, **fields})
            return await asyncio.wait_for(future, limit)
        finally:
            self._calls.pop(request_id, None)

    # -------------------------------------------------------------- lifecycle
    async def run(self) -> None:
        failures = 0
        dropped_at: float | None = None
        dropped_from = 0
        while not self.stop.is_set() and not self._final:
            joined = await self._connect_and_join(dropped_at)
            if joined:
                failures = 0
                if dropped_at is not None:
                    self._record_back(dropped_at, dropped_from)
                    dropped_at = None
                await self._read()
                self.stats.live -= 1
                self._fail_calls()
                if self.stop.is_set() or self._final:
                    break
                dropped_at, dropped_from = time.time(), self.url_index
                self.stats.drops += 1
                self.on_dropped(dropped_at)
                self.url_index = self._another_url()
                continue
            failures += 1
            trying = dropped_at is not None and time.time() - dropped_at < RECONNECT_FOR
            if (failures >= MAX_FAILURES and not trying) or self._final:
                self.stats.gave_up += 1
                break
            self.url_index = self._another_url()
            delay = min(2.0, 0.25 * 2**failures) * random.uniform(0.5, 1.5)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), delay)
        if dropped_at is not None:
            self.stats.reconnects.append((dropped_at, -1.0, dropped_from))
        await self.close()

    def _another_url(self) -> int:
        """Any other node, at random: the bots of a dead node spread over the others
        (as behind a load balancer) instead of all moving to the next one."""
        n = len(self.urls)
        if n == 1:
            return 0
        return (self.url_index + _URLS.randrange(1, n)) % n

    def _record_back(self, dropped_at: float, dropped_from: int) -> None:
        self.stats.reconnected += 1
        self.stats.reconnects.append((dropped_at, time.time(), dropped_from))

    async def _connect_and_join(self, dropped_at: float | None) -> bool:
        self.stats.attempted += 1
        started = time.time()
        url = self.urls[self.url_index]
        ws: aiohttp.ClientWebSocketResponse | LeanWebSocket
        try:
            if self._connect is not None:
                ws = await asyncio.wait_for(self._connect(url + "/ws"), CONNECT_TIMEOUT)
            else:
                assert self._session is not None
                ws = await asyncio.wait_for(
                    self._session().ws_connect(
                        url + "/ws", max_msg_size=0, heartbeat=None, compress=0
                    ),
                    CONNECT_TIMEOUT,
                )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            self.stats.failed["connect:" + type(exc).__name__] += 1
            return False
        self.ws = ws
        join: Message = {"type": "join", "room_id": self.room_id, "name": self.name}
        if self.token is not None:
            join["token"] = self.token
        try:
            await ws.send_bytes(msgpack.packb(join))
            deadline = started + JOIN_TIMEOUT
            while True:
                got = await ws.receive(timeout=max(0.01, deadline - time.time()))
                if got.type is not aiohttp.WSMsgType.BINARY:
                    self.stats.failed[f"closed:{ws.close_code}"] += 1
                    return False
                msg: Message = msgpack.unpackb(got.data)
                kind = msg.get("type")
                if kind == "joined":
                    break
                if kind == "error":
                    code = str(msg.get("code"))
                    self.stats.failed[code] += 1
                    if code in ("banned", "room_ended", "not_found", "token_invalid"):
                        self._final = True
                    await ws.close()
                    return False
                if kind == "bye":
                    self.stats.failed["bye:" + str(msg.get("reason"))] += 1
                    return False
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
            self.stats.failed["join:" + type(exc).__name__] += 1
            with contextlib.suppress(Exception):
                await ws.close()
            return False
        now = time.time()
        self.stats.succeeded += 1
        self.stats.live += 1
        if not self.ever_joined:
            self.ever_joined = True
            self.stats.joined_bots += 1
            self.stats.last_first_join = max(self.stats.last_first_join, now)
            self.stats.join_ms.append((now - started) * 1000.0)
        self.joined = msg
        self.user_id = str(msg["you"]["user_id"])
        if self.token is None and msg.get("token"):
            self.token = str(msg["token"])  # a guest: come back as the same one
        snapshot = msg["snapshot"]
        self.version = int(snapshot["version"])
        self.queue_version = int(snapshot["queue_version"])
        self.on_joined(msg, dropped_at is not None)
        return True

    async def _read(self) -> None:
        ws = self.ws
        assert ws is not None
        if isinstance(ws, LeanWebSocket):
            ws.listen(lambda data: self._on_frame(ws, data))
            await ws.wait_closed()
            return
        try:
            async for got in ws:
                if got.type is not aiohttp.WSMsgType.BINARY:
                    continue
                if self._handle(got.data, time.time()):
                    with contextlib.suppress(Exception):
                        await ws.send_bytes(msgpack.packb({"type": "resync"}))
        except (aiohttp.ClientError, OSError, ValueError):
            pass

    def _on_frame(self, ws: LeanWebSocket, data: bytes | str) -> None:
        """A frame, as the lean client parses it (no task in between)."""
        if not isinstance(data, bytes):
            return
        try:
            if self._handle(data, time.time()):
                ws.send_now(msgpack.packb({"type": "resync"}))
        except ValueError:  # not msgpack, or not the protocol: like a drop
            ws.abort()

    def _handle(self, data: bytes, now: float) -> bool:
        """One message after `joined`; True if a version gap calls for a resync."""
        msg: Message = msgpack.unpackb(data)
        kind = msg.get("type")
        resync = False
        if kind in ("ack", "error", "rtc_answer"):
            future = self._calls.get(msg.get("id") or 0)
            if future is not None and not future.done():
                future.set_result(msg)
        elif kind == "snapshot":
            snap = msg["snapshot"]
            self.version = int(snap["version"])
            self.queue_version = int(snap["queue_version"])
        elif kind == "bye":
            reason = str(msg.get("reason"))
            self.stats.byes[reason] += 1
            if reason in FINAL_BYES:
                self._final = True
        else:
            version = msg.get("version")
            if isinstance(version, int) and kind != "room_stats" and "queue_version" not in msg:
                if version > self.version + 1 and self.version >= 0:
                    self.stats.gaps += 1
                    resync = True
                self.version = max(self.version, version)
        self.on_message(msg, now)
        return resync

    def _fail_calls(self) -> None:
        for future in self._calls.values():
            if not future.done():
                future.set_exception(ConnectionError("connection dropped"))
        self._calls.clear()

    async def close(self) -> None:
        ws, self.ws = self.ws, None
        if ws is not None and not ws.closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 2.0)

    async def leave(self) -> None:
        """Say goodbye (end of run): the server removes us at once, no grace."""
        self._final = True
        with contextlib.suppress(Exception):
            await self.send({"type": "leave"})
