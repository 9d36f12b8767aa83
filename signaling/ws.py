"""The WebSocket endpoint: one handler per connection.

The first frame must be ``join``; after it, each frame is one command. Bad input gets
an ``error`` with a typed code and the connection stays open; a frame over the size
limit closes it with 1009 (aiohttp enforces ``max_msg_size``).
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Awaitable, Callable

from aiohttp import WSCloseCode, WSMsgType, web

from chatrooms import errors
from chatrooms.ids import RoomId
from signaling.aiohttp_internals import release_websocket
from signaling.auth import AuthError, AuthErrorCode, Identity
from signaling.capacity import Capacity, automatic_limit
from signaling.connection import Connection, ConnState, Counters, WriteNow
from signaling.media import MediaService
from signaling.metrics import Traffic
from signaling.protocol import schema as s
from signaling.protocol.codec import (
    EncodedOnce,
    Frame,
    ProtocolError,
    WireFormat,
    decode_command,
)
from signaling.service import RoomService

log = logging.getLogger(__name__)


class WebSocketEndpoint:
    def __init__(
        self,
        *,
        service: RoomService,
        media: MediaService,
        traffic: Traffic,
        counters: Counters,
        guest_mode: bool,
        max_message_size: int,
        heartbeat: float,
        join_timeout: float,
        queue_size: int,
        coalesce_drop_at: int,
        commands_per_second: float,
        command_burst: int,
        max_connections: int = 0,
    ) -> None:
        self._service = service
        self._media = media
        self._traffic = traffic
        self._counters = counters
        self._guest_mode = guest_mode
        self._max_message_size = max_message_size
        self._heartbeat = heartbeat
        self._join_timeout = join_timeout
        self._queue_size = queue_size
        self._coalesce_drop_at = coalesce_drop_at
        self._rate = commands_per_second
        self._burst = command_burst
        self._sockets: set[web.WebSocketResponse] = set()
        self.capacity = Capacity(
            max_connections or automatic_limit(),
            lambda: len(self._sockets) + media.session_count(),
        )

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if not self.capacity.admit():
            # Before the upgrade: the client (or its load balancer) tries another node.
            return web.json_response(
                {"error": {"code": "node_full", "message": "this node is full, try another"}},
                status=503,
                headers={"Retry-After": "1"},
            )
        ws = web.WebSocketResponse(
            heartbeat=self._heartbeat, max_msg_size=self._max_message_size, compress=False
        )
        try:
            await ws.prepare(request)
        except ConnectionError:
            # The client left during the upgrade (a timed-out connect): nothing to
            # serve, and not a server error worth a traceback per connection.
            self._counters.closed += 1
            release_websocket(request)
            return ws
        self._sockets.add(ws)
        conn: Connection | None = None
        try:
            conn = await self._join_phase(ws, request)
            if conn is not None:
                await self._command_phase(ws, conn)
        except ConnectionError:
            pass  # the client went away while we answered it
        finally:
            self._sockets.discard(ws)
            self._counters.closed += 1
            if conn is not None:
                await self._media.disconnected(conn)
                await self._service.disconnected(conn)
                if conn.state is ConnState.CLOSING:  # we are closing it: let the writer finish
                    await conn.wait_closed(grace=1.0)
                conn.abort()
            if not ws.closed:
                await ws.close()
            release_websocket(request)
        return ws

    # ------------------------------------------------------------- helpers
    async def _reply(
        self, ws: web.WebSocketResponse, fmt: WireFormat, msg: s.ServerMessage
    ) -> None:
        """Direct send, only before the connection has its writer."""
        frame = EncodedOnce(msg).frame(fmt)
        if isinstance(frame, str):
            await ws.send_str(frame)
        else:
            await ws.send_bytes(frame)

    def _error(
        self, code: str, message: str, request_id: int | None, retry_after: float | None = None
    ) -> s.Error:
        self._traffic.errors[code] += 1
        return s.Error(code=code, message=message, id=request_id, retry_after=retry_after)

    @staticmethod
    def _frame_of(msg: object) -> tuple[Frame, WireFormat] | None:
        data = getattr(msg, "data", None)
        kind = getattr(msg, "type", None)
        if kind is WSMsgType.BINARY and isinstance(data, bytes):
            return data, WireFormat.MSGPACK
        if kind is WSMsgType.TEXT and isinstance(data, str):
            return data, WireFormat.JSON
        return None

    def _identify(self, join: s.Join) -> Identity:
        tokens = self._service.tokens
        if join.token:
            identity = tokens.verify(join.token)
            if identity.guest and not self._guest_mode:
                raise AuthError(AuthErrorCode.TOKEN_INVALID, "guest tokens are not accepted here")
            return identity
        if not self._guest_mode:
            raise AuthError(AuthErrorCode.TOKEN_REQUIRED, "this server needs a token to join")
        identity, _ = tokens.issue_guest(join.name)
        return identity

    # --------------------------------------------------------------- phases
    async def _join_phase(
        self, ws: web.WebSocketResponse, request: web.Request
    ) -> Connection | None:
        """Read frames until a join succeeds; errors are answered, not fatal."""
        deadline = time.monotonic() + self._join_timeout
        fmt = WireFormat.JSON
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                await self._reply(
                    ws, fmt, s.Bye(reason=s.ByeReason.JOIN_TIMEOUT.value, message="join in time")
                )
                code = s.CLOSE_CODES[s.ByeReason.JOIN_TIMEOUT]
                await ws.close(code=code, message=b"join timeout")
                return None
            try:
                msg = await ws.receive(timeout=remaining)
            except TimeoutError:
                continue
            got = self._frame_of(msg)
            if got is None:
                return None  # closed, or an error (e.g. 1009 for an oversized frame)
            frame, fmt = got
            try:
                cmd = decode_command(frame)
            except ProtocolError as exc:
                await self._reply(ws, fmt, self._error(exc.code, exc.message, exc.request_id))
                continue
            self._traffic.messages_in[cmd.type] += 1
            if not isinstance(cmd, s.Join):
                err = self._error(s.ProtocolErrorCode.NOT_JOINED, "send join first", cmd.id)
                await self._reply(ws, fmt, err)
                continue
            if cmd.protocol != s.PROTOCOL_VERSION:
                err = self._error(
                    s.ProtocolErrorCode.UNSUPPORTED_VERSION,
                    f"this server speaks protocol {s.PROTOCOL_VERSION}",
                    cmd.id,
                )
                await self._reply(ws, fmt, err)
                continue
            try:
                identity = self._identify(cmd)
            except AuthError as exc:
                await self._reply(ws, fmt, self._error(exc.code, exc.message, cmd.id))
                continue
            conn = Connection(
                send_frame=ws.send_str if fmt is WireFormat.JSON else ws.send_bytes,  # type: ignore[arg-type]
                close_transport=self._closer(ws),
                fmt=fmt,
                identity=identity,
                room_id=RoomId(cmd.room_id),
                counters=self._counters,
                queue_size=self._queue_size,
                coalesce_drop_at=self._coalesce_drop_at,
                commands_per_second=self._rate,
                command_burst=self._burst,
                write_now=_writer_now(request, ws, fmt),
            )
            try:
                await self._service.join(conn, cmd.name if identity.guest else None)
            except errors.ChatroomsError as exc:
                conn.abort()
                retry = exc.retry_after if isinstance(exc, errors.KickedCooldown) else None
                await self._reply(ws, fmt, self._error(exc.code, exc.message, cmd.id, retry))
                continue
            self._traffic.joins += 1
            return conn

    @staticmethod
    def _closer(ws: web.WebSocketResponse) -> Callable[[int, bytes], Awaitable[None]]:
        async def close(code: int, message: bytes) -> None:
            await ws.close(code=code, message=message)

        return close

    async def _command_phase(self, ws: web.WebSocketResponse, conn: Connection) -> None:
        loop = asyncio.get_running_loop()
        limited = False  # one rate_limited error per burst, not one per dropped frame
        async for msg in ws:
            got = self._frame_of(msg)
            if got is None:
                continue
            frame, _ = got
            try:
                cmd = decode_command(frame)
            except ProtocolError as exc:
                conn.send(self._error(exc.code, exc.message, exc.request_id))
                continue
            self._traffic.messages_in[cmd.type] += 1
            if not conn.bucket.take(loop.time()):
                # Dropped unexecuted. One error per burst, so a flood cannot fill its own queue.
                if not limited:
                    conn.send(
                        self._error(
                            s.ProtocolErrorCode.RATE_LIMITED,
                            "too many commands; slow down",
                            cmd.id,
                            retry_after=1.0 / conn.bucket.rate,
                        )
                    )
                else:
                    self._traffic.errors[s.ProtocolErrorCode.RATE_LIMITED] += 1
                limited = True
                continue
            limited = False
            conn.begin_command()
            try:
                await self._dispatch(conn, cmd)
            finally:
                conn.end_command()
            if conn.left:
                break

    async def _dispatch(self, conn: Connection, cmd: s.Command) -> None:
        try:
            if isinstance(cmd, s.Ping):
                conn.send(s.Pong(id=cmd.id))
                return
            if isinstance(cmd, s.Join):
                raise ProtocolError(
                    s.ProtocolErrorCode.ALREADY_JOINED, "this connection is in a room", cmd.id
                )
            if isinstance(cmd, s.Resync):
                conn.send(s.Snapshot(snapshot=await self._service.snapshot(conn)))
                return
            if isinstance(cmd, s.ListAudience):
                conn.send(await self._service.list_audience(conn, cmd))
                return  # the audience page is the reply
            if isinstance(cmd, s.RtcOffer):
                answer = await self._media.offer(conn, self._service.room_of(conn), cmd.sdp)
                conn.send(s.RtcAnswer(id=cmd.id, sdp=answer))
                return  # the answer is the reply
            if isinstance(cmd, s.RtcCandidate):
                await self._media.candidate(conn, cmd)
            elif isinstance(cmd, s.Leave):
                await self._service.leave(conn)
            else:
                await self._service.execute(conn, cmd)
        except ProtocolError as exc:
            conn.send(self._error(exc.code, exc.message, cmd.id))
            return
        except errors.ChatroomsError as exc:
            conn.send(self._error(exc.code, exc.message, cmd.id))
            return
        except Exception:
            log.exception("command %s from %s failed", cmd.type, conn.user_id)
            conn.send(self._error(s.ProtocolErrorCode.INTERNAL, "the server failed", cmd.id))
            return
        if cmd.id is not None:
            conn.send(s.Ack(id=cmd.id))

    async def shutdown(self) -> None:
        """Close every socket with GOING_AWAY (aiohttp's graceful-shutdown recipe)."""
        for ws in list(self._sockets):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")


def ws_header(opcode: int, length: int) -> bytes:
    """The header of a final, unmasked (server to client) WebSocket frame."""
    if length < 126:
        return bytes((0x80 | opcode, length))
    if length < 1 << 16:
        return _HEADER16.pack(0x80 | opcode, 126, length)
    return _HEADER64.pack(0x80 | opcode, 127, length)


_HEADER16 = struct.Struct("!BBH")
_HEADER64 = struct.Struct("!BBQ")


def _writer_now(
    request: web.Request, ws: web.WebSocketResponse, fmt: WireFormat
) -> WriteNow | None:
    """Write a frame straight to the socket when nothing is waiting to be sent on it.

    aiohttp writes every frame whole and at once, so frames never interleave; a
    transport with unsent bytes (a slow reader) or a closing socket is left to the
    connection's writer, which goes through aiohttp and its flow control."""
    transport = request.transport
    if transport is None:
        return None
    opcode = int(WSMsgType.TEXT if fmt is WireFormat.JSON else WSMsgType.BINARY)

    def write_now(frame: Frame) -> bool:
        if ws.closed or transport.is_closing() or transport.get_write_buffer_size():
            return False
        data = frame.encode() if isinstance(frame, str) else frame
        transport.write(ws_header(opcode, len(data)) + data)
        return True

    return write_now
