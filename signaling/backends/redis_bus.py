"""Room events between nodes over Redis pub/sub.

The store publishes from inside its commit script, so events leave in commit order.
Each node subscribes to a room's channel only while it has participants there. When
the subscription breaks (Redis restarted, network), the node reconnects with backoff
and resynchronises: it reloads each room and hands the hub a fresh view, since events
may have been missed meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging

from chatrooms.ids import RoomId
from chatrooms.ports import EventHandler, Resync
from signaling.backends.redis_channels import Subscriber, open_subscriber
from signaling.backends.redis_client import FAILURE, FAILURE_OR_RECONNECTING, Client
from signaling.backends.redis_store import RedisRoomStore, events_channel
from signaling.backends.wire import unpack_events

log = logging.getLogger(__name__)

BACKOFF_MIN, BACKOFF_MAX = 0.1, 2.0


class RedisEventBus:
    def __init__(self, client: Client, store: RedisRoomStore) -> None:
        self._client = client
        self._store = store
        self._handlers: dict[RoomId, EventHandler] = {}
        self._sub: Subscriber | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self.on_resync: Resync | None = None  # told of each room after a reconnect
        self.connected = False
        self.reconnects = 0

    async def subscribe(self, room_id: RoomId, handler: EventHandler) -> None:
        fresh = room_id not in self._handlers
        self._handlers[room_id] = handler
        self._ensure_reader()
        if fresh and self._sub is not None and self.connected:
            # If this fails, the reader reconnects and subscribes every room again.
            with contextlib.suppress(*FAILURE_OR_RECONNECTING):
                await self._sub.add([events_channel(room_id)])

    async def unsubscribe(self, room_id: RoomId) -> None:
        if self._handlers.pop(room_id, None) is None:
            return
        self._store.forget(room_id)
        if self._sub is not None and self.connected:
            with contextlib.suppress(*FAILURE_OR_RECONNECTING):
                await self._sub.remove([events_channel(room_id)])

    def _ensure_reader(self) -> None:
        if self._reader is None or self._reader.done():
            self._reader = asyncio.get_running_loop().create_task(self._read_forever())

    async def _read_forever(self) -> None:
        backoff = BACKOFF_MIN
        first = True
        while True:
            sub: Subscriber | None = None
            try:
                channels = [events_channel(r) for r in self._handlers]
                sub = await open_subscriber(self._client, "cr:bus:keepalive", channels)
                self._sub = sub
                self.connected = True
                backoff = BACKOFF_MIN
                if not first:
                    self.reconnects += 1
                    await self._resync_all()
                first = False
                while True:
                    message = await sub.get(wait=1.0)
                    if message is not None:
                        await self._deliver(*message)
            except asyncio.CancelledError:
                if sub is not None:
                    await sub.aclose()
                raise
            except FAILURE as exc:
                log.warning("event bus lost Redis (%s); retrying in %.1fs", exc, backoff)
                self.connected = False
                self._sub = None
                if sub is not None:
                    await sub.aclose()
                await asyncio.sleep(backoff)
                backoff = min(BACKOFF_MAX, backoff * 2)

    async def _deliver(self, channel: bytes, data: bytes) -> None:
        room_id = RoomId(channel.decode().split("{", 1)[1].split("}", 1)[0])
        handler = self._handlers.get(room_id)
        if handler is None:
            return
        try:
            events = unpack_events(data)
            await self._store.ensure_fresh(room_id, events)
        except Exception:
            log.exception("bad event batch on %s", room_id)
            return
        result = handler(room_id, events)
        if inspect.isawaitable(result):
            await result

    async def _resync_all(self) -> None:
        """After a reconnect: reload every room we serve and resend snapshots."""
        for room_id in list(self._handlers):
            with contextlib.suppress(Exception):
                await self._store.load(room_id)
                if self.on_resync is not None:
                    result = self.on_resync(room_id)
                    if inspect.isawaitable(result):
                        await result

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        self._handlers.clear()
