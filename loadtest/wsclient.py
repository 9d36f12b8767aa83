"""A lean WebSocket client for listener bots: one ``asyncio.Protocol`` per connection.

aiohttp's client costs a listener bot a task wake-up, a reader queue and a few layers
of Python per received frame, and a session, a connector and a request per connect;
with 10,000 bots in a process on a shared 2-core machine that was as much CPU as
the server's. Here a frame is parsed in ``data_received`` and handed to the bot's
callback at once. Just what a listener needs: the HTTP upgrade, unfragmented text or
binary frames from the server, pings answered, client frames masked (with a zero key:
the payload goes out as is), close. Not for untrusted servers or general use.
"""

from __future__ import annotations

import asyncio
import base64
import errno
import os
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

from aiohttp import WSMsgType

_MASK = b"\x00\x00\x00\x00"
_LEN16 = struct.Struct("!H")
_LEN64 = struct.Struct("!Q")
MAX_HEADER = 16 * 1024


class HandshakeError(ConnectionError):
    pass


@dataclass(frozen=True, slots=True)
class Frame:
    type: WSMsgType
    data: bytes | str | None


_CLOSED = Frame(WSMsgType.CLOSED, None)


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A final, masked (zero key) client frame."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 1 << 16:
        head = bytes((0x80 | opcode, 0x80 | 126)) + _LEN16.pack(n)
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + _LEN64.pack(n)
    return head + _MASK + payload


class LeanWebSocket(asyncio.Protocol):
    """Frames are queued until :attr:`on_frame` is set, then delivered to it directly."""

    def __init__(self, request: bytes) -> None:
        self._request = request
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._upgraded = False
        loop = asyncio.get_running_loop()
        self._handshake: asyncio.Future[None] = loop.create_future()
        self._done: asyncio.Future[None] = loop.create_future()
        self._frames: deque[Frame] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self.on_frame: Callable[[bytes | str], None] | None = None
        self.close_code: int | None = None
        self._closing = False

    # ------------------------------------------------------------ protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.write(self._request)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        if self.close_code is None:
            self.close_code = 1006
        if not self._handshake.done():
            self._handshake.set_exception(ConnectionError("closed during the handshake"))
        if not self._done.done():
            self._done.set_result(None)
        self._wake()

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        if not self._upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEADER:
                    self._fail_handshake("response header too long")
                return
            status = bytes(buf[: buf.find(b"\r\n")])
            del buf[: end + 4]
            if not status.startswith(b"HTTP/1.1 101"):
                self._fail_handshake(status.decode("latin-1", "replace"))
                return
            self._upgraded = True
            self._handshake.set_result(None)
        self._parse()

    # ------------------------------------------------------------- frames
    def _parse(self) -> None:
        buf = self._buf
        while len(buf) >= 2:
            b0, b1 = buf[0], buf[1]
            n = b1 & 0x7F
            at = 2
            if n == 126:
                if len(buf) < 4:
                    return
                n = _LEN16.unpack_from(buf, 2)[0]
                at = 4
            elif n == 127:
                if len(buf) < 10:
                    return
                n = _LEN64.unpack_from(buf, 2)[0]
                at = 10
            if b1 & 0x80:  # a server must not mask; unmask anyway
                if len(buf) < at + 4 + n:
                    return
                mask = buf[at : at + 4]
                at += 4
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(buf[at : at + n]))
            else:
                if len(buf) < at + n:
                    return
                payload = bytes(buf[at : at + n])
            del buf[: at + n]
            opcode = b0 & 0x0F
            if not b0 & 0x80 or opcode == 0:
                self._protocol_error()  # fragmented: our server never sends that
                return
            if opcode == WSMsgType.BINARY:
                self._deliver(payload)
            elif opcode == WSMsgType.TEXT:
                self._deliver(payload.decode())
            elif opcode == WSMsgType.PING:
                self._write(client_frame(WSMsgType.PONG, payload))
            elif opcode == WSMsgType.CLOSE:
                self.close_code = _LEN16.unpack_from(payload)[0] if len(payload) >= 2 else 1005
                self._write(client_frame(WSMsgType.CLOSE, payload[:2]))
                self._shut()
                return

    def _deliver(self, data: bytes | str) -> None:
        callback = self.on_frame
        if callback is not None and not self._frames:
            callback(data)
            return
        kind = WSMsgType.BINARY if isinstance(data, bytes) else WSMsgType.TEXT
        self._frames.append(Frame(kind, data))
        self._wake()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail_handshake(self, why: str) -> None:
        if not self._handshake.done():
            self._handshake.set_exception(HandshakeError(why))
        self._shut()

    def _protocol_error(self) -> None:
        self.close_code = 1002
        self._write(client_frame(WSMsgType.CLOSE, _LEN16.pack(1002)))
        self._shut()

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self._closing:
            self.transport.write(data)

    def _shut(self) -> None:
        self._closing = True
        if self.transport is not None:
            self.transport.close()
        self._wake()

    # ----------------------------------------------------------------- api
    @property
    def closed(self) -> bool:
        return self._closing

    async def handshake(self) -> None:
        await self._handshake

    async def send_bytes(self, data: bytes) -> None:
        if self._closing:
            raise ConnectionError("websocket is closed")
        self._write(client_frame(WSMsgType.BINARY, data))

    def send_now(self, data: bytes) -> None:
        if not self._closing:
            self._write(client_frame(WSMsgType.BINARY, data))

    async def receive(self, timeout: float | None = None) -> Frame:  # noqa: ASYNC109 - as aiohttp
        """The next frame, or a CLOSED frame; raises TimeoutError."""
        while not self._frames:
            if self._closing:
                return _CLOSED
            waiter = asyncio.get_running_loop().create_future()
            self._waiter = waiter
            await asyncio.wait_for(waiter, timeout)
        return self._frames.popleft()

    def listen(self, callback: Callable[[bytes | str], None]) -> None:
        """From now on, every frame goes to ``callback`` (queued ones first)."""
        while self._frames:
            frame = self._frames.popleft()
            if frame.data is not None:
                callback(frame.data)
        self.on_frame = callback

    async def wait_closed(self) -> None:
        await asyncio.shield(self._done)

    def abort(self) -> None:
        self._protocol_error()

    async def close(self, code: int = 1000) -> None:
        if not self._closing:
            self._write(client_frame(WSMsgType.CLOSE, _LEN16.pack(code)))
            self._shut()
        await self.wait_closed()


class LocalPorts:
    """Hands out explicit local ports from ``[low, high)``, cycling, per source address.

    ``bind((address, 0))`` makes the kernel search for a free port from a random
    offset; with thousands of ports taken on an address that search held 35 % of a bot
    worker's CPU at the end of a 30,000 ramp (``perf``: ``inet_csk_get_port``). A
    given port is one hash lookup. Each worker process gets its own range, so
    workers never race for a port; one still taken (a live or closing socket of ours,
    anything else on the machine) is skipped.
    """

    ATTEMPTS = 64

    def __init__(self, low: int, high: int) -> None:
        if not 1024 <= low < high <= 65536:
            raise ValueError(f"bad local port range [{low}, {high})")
        self.low, self.high = low, high
        self._next: dict[str, int] = {}

    def take(self, address: str) -> int:
        port = self._next.get(address, self.low)
        self._next[address] = port + 1 if port + 1 < self.high else self.low
        return port


async def connect(
    url: str, source: str | None = None, ports: LocalPorts | None = None
) -> LeanWebSocket:
    """Open ``ws://`` (or ``http://``) ``url`` from ``source``; after the 101.

    With ``ports`` (and a ``source``) the local port is chosen from it, not by the kernel.
    """
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 80
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    loop = asyncio.get_running_loop()

    def protocol() -> LeanWebSocket:
        return LeanWebSocket(request)

    ws: LeanWebSocket | None = None
    if source and ports:
        for _ in range(LocalPorts.ATTEMPTS):
            try:
                local = (source, ports.take(source))
                _, ws = await loop.create_connection(protocol, host, port, local_addr=local)
                break
            except OSError as exc:
                # The port is bound by someone (EADDRINUSE) or the 4-tuple is still in
                # TIME_WAIT (EADDRNOTAVAIL): the next port. Anything else is the caller's.
                if exc.errno not in (errno.EADDRINUSE, errno.EADDRNOTAVAIL):
                    raise
    if ws is None:
        local_addr = (source, 0) if source else None
        _, ws = await loop.create_connection(protocol, host, port, local_addr=local_addr)
    try:
        await ws.handshake()
    except BaseException:
        ws._shut()
        raise
    return ws
