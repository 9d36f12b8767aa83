"""One client connection's outbound side: a bounded queue and one writer task.

Fan-out calls :meth:`Connection.send` which never awaits. With nothing queued and the
writer idle, a frame goes straight to the transport when it can take it without
waiting (``write_now``): no task switch per frame, which is most of what a fan-out to
thousands of connections costs besides the system call. When a client falls behind,
coalescible updates (counts, levels) are replaced or dropped first; if even the
ordered backlog reaches its bound, the client is cut off with a reason. Either way
nobody else waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum

from chatrooms.events import Event
from chatrooms.ids import RoomId, UserId
from signaling.auth import Identity
from signaling.protocol.codec import EncodedOnce, Frame, WireFormat
from signaling.protocol.schema import CLOSE_CODES, Ack, Bye, ByeReason, Error, ServerMessage

log = logging.getLogger(__name__)

SendFrame = Callable[[Frame], Awaitable[None]]
# Write a whole frame now if the transport takes it without waiting; False: it cannot.
WriteNow = Callable[[Frame], bool]
CloseTransport = Callable[[int, bytes], Awaitable[None]]


class ConnState(StrEnum):
    JOINING = "joining"
    LIVE = "live"
    CLOSING = "closing"


@dataclass(slots=True)
class Counters:
    """Totals for /metrics, shared by all connections of a node."""

    frames_out: int = 0
    coalesced_dropped: int = 0
    slow_consumers: int = 0
    closed: int = 0  # WebSockets that ended, for whatever reason


@dataclass(slots=True)
class TokenBucket:
    rate: float
    burst: float
    tokens: float = 0.0
    stamp: float = 0.0
    _started: bool = field(default=False)

    def take(self, now: float) -> bool:
        if not self._started:
            self.tokens, self.stamp, self._started = self.burst, now, True
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class Connection:
    def __init__(
        self,
        *,
        send_frame: SendFrame,
        close_transport: CloseTransport,
        fmt: WireFormat,
        identity: Identity,
        room_id: RoomId,
        counters: Counters,
        queue_size: int,
        coalesce_drop_at: int,
        commands_per_second: float,
        command_burst: int,
        write_now: WriteNow | None = None,
    ) -> None:
        self._send_frame = send_frame
        self._write_now = write_now
        self._idle = False  # the writer waits for work and nothing is queued
        self._close_transport = close_transport
        self.fmt = fmt
        self.identity = identity
        self.room_id = room_id
        self.state = ConnState.JOINING
        self.left = False  # said goodbye itself: no reconnect grace
        self._counters = counters
        self._queue: deque[Frame] = deque()
        self._coalesced: dict[str, Frame] = {}
        self._queue_size = queue_size
        self._coalesce_drop_at = coalesce_drop_at
        self._wakeup = asyncio.Event()
        self._pending: list[Event] = []  # events that arrived before the joined snapshot
        self._close: tuple[ByeReason, str] | None = None
        self.bucket = TokenBucket(rate=commands_per_second, burst=command_burst)
        self._writer = asyncio.get_running_loop().create_task(self._write_loop())
        self.last_snapshot: tuple[int, int] = (0, 0)  # (version, queue_version) sent
        self._in_flight = 0  # commands being carried out: their replies precede any bye

    @property
    def user_id(self) -> UserId:
        return self.identity.user_id

    @property
    def backlog(self) -> int:
        return len(self._queue)

    # -------------------------------------------------------------- enqueueing
    def send(self, message: ServerMessage | EncodedOnce) -> None:
        """Queue a message without waiting. Never raises for a slow client."""
        encoded = message if isinstance(message, EncodedOnce) else EncodedOnce(message)
        msg = encoded.message
        if self.state is ConnState.CLOSING and not isinstance(msg, Ack | Error):
            return  # only replies to commands in flight still go out before the bye
        frame = encoded.frame(self.fmt)
        coalescible = isinstance(msg, ServerMessage) and msg.coalescible
        if coalescible:
            if self.state is ConnState.JOINING:
                return  # the joined snapshot will carry the latest figures
            if len(self._queue) >= self._coalesce_drop_at:
                self._counters.coalesced_dropped += 1
                return
        elif len(self._queue) >= self._queue_size:
            self._counters.slow_consumers += 1
            self.close(ByeReason.SLOW_CONSUMER, "you fell too far behind; reconnect")
            return
        if (
            self._idle
            and self._write_now is not None
            and not self._queue
            and not self._coalesced
            and self._close is None
            and self._write_now(frame)
        ):
            self._counters.frames_out += 1  # nothing was waiting: order is kept
            return
        if isinstance(msg, ServerMessage) and msg.coalescible:
            if msg.type in self._coalesced:
                self._counters.coalesced_dropped += 1
            self._coalesced[msg.type] = frame
        else:
            self._queue.append(frame)
        self._wakeup.set()

    def send_event(self, event: Event, encoded: EncodedOnce) -> None:
        """An event from the bus: held back until the joined snapshot is queued."""
        if self.state is ConnState.JOINING:
            self._pending.append(event)
            return
        self.send(encoded)

    def go_live(self, first: ServerMessage, version: int, queue_version: int) -> None:
        """Queue the snapshot message, then the events that came after it."""
        self.send(first)
        self.state = ConnState.LIVE if self.state is ConnState.JOINING else self.state
        self.last_snapshot = (version, queue_version)
        pending, self._pending = self._pending, []
        for event in pending:
            if event.version > version or getattr(event, "queue_version", 0) > queue_version:
                self.send(EncodedOnce(event))

    def close(self, reason: ByeReason, message: str) -> None:
        """Say why, flush what is queued (bounded), and close."""
        if self._close is not None:
            return
        if reason is ByeReason.SLOW_CONSUMER:
            self._queue.clear()  # a slow client gets the reason, not the backlog
            self._coalesced.clear()
        self.state = ConnState.CLOSING
        self._close = (reason, message)
        self._wakeup.set()

    # --------------------------------------------------------------- writing
    async def _write_loop(self) -> None:
        try:
            while True:
                self._idle = not (self._queue or self._coalesced)
                await self._wakeup.wait()
                self._idle = False
                self._wakeup.clear()
                while self._queue or self._coalesced:
                    if self._queue:
                        frame = self._queue.popleft()
                    else:
                        _, frame = self._coalesced.popitem()
                    await self._send_frame(frame)
                    self._counters.frames_out += 1
                if self._close is not None and self._in_flight == 0:
                    reason, message = self._close
                    bye = Bye(reason=reason.value, message=message)
                    await self._send_frame(EncodedOnce(bye).frame(self.fmt))
                    await self._close_transport(CLOSE_CODES[reason], message.encode()[:120])
                    return
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            # The peer went away (or we are shutting down): nothing more to write.
            return
        except Exception:  # pragma: no cover - a bug; don't let it pass silently
            log.exception("writer of %s failed", self.user_id)

    def begin_command(self) -> None:
        self._in_flight += 1

    def end_command(self) -> None:
        """The reply of a command is queued; a pending close may now go ahead."""
        self._in_flight -= 1
        self._wakeup.set()

    async def wait_closed(self, grace: float = 5.0) -> None:
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(self._writer), grace)

    def abort(self) -> None:
        """Stop writing now (the transport is gone)."""
        self.state = ConnState.CLOSING
        self._idle = False
        self._writer.cancel()
