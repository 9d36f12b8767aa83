"""The HTTP API: health, metrics, the lobby, and creating rooms. Errors are JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from chatrooms import errors
from chatrooms.ids import RoomId
from signaling.auth import AuthError, AuthErrorCode, Identity
from signaling.capacity import Capacity
from signaling.metrics import CONTENT_TYPE, Metrics
from signaling.protocol import schema as s
from signaling.protocol.codec import ProtocolError, build, to_wire
from signaling.service import RoomService

MAX_BODY = 16 * 1024

_STATUS = {
    errors.ErrorCode.NOT_FOUND: 404,
    errors.ErrorCode.FORBIDDEN: 403,
    errors.ErrorCode.INVALID_ARGUMENT: 400,
    errors.ErrorCode.UNAVAILABLE: 503,
    AuthErrorCode.TOKEN_REQUIRED: 401,
    AuthErrorCode.TOKEN_INVALID: 401,
    AuthErrorCode.TOKEN_EXPIRED: 401,
}


def error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


@dataclass(frozen=True, slots=True)
class HttpApi:
    service: RoomService
    metrics: Metrics
    guest_mode: bool
    node_id: str
    capacity: Capacity

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/healthz", self.healthz),
            web.get("/metrics", self.render_metrics),
            web.get("/api/rooms", self.list_rooms),
            web.post("/api/rooms", self.create_room),
            web.get("/api/rooms/{room_id}", self.get_room),
            web.post("/api/guest", self.guest),
            web.get("/api/config", self.config),
        ]

    async def healthz(self, request: web.Request) -> web.Response:
        # 200 while the node serves; `full` tells a load balancer to send new people
        # elsewhere (the node answers new WebSockets with 503 meanwhile).
        return web.json_response(
            {
                "status": "ok",
                "node": self.node_id,
                "full": self.capacity.full(),
                "used": self.capacity.used(),
                "capacity": self.capacity.limit,
            }
        )

    async def render_metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    async def config(self, request: web.Request) -> web.Response:
        return web.json_response({"guest_mode": self.guest_mode, "protocol": s.PROTOCOL_VERSION})

    async def list_rooms(self, request: web.Request) -> web.Response:
        topic = request.query.get("topic", "").strip().lower()
        language = request.query.get("language", "").strip().lower()
        try:
            rooms = await self.service.list_rooms()
        except errors.ChatroomsError as exc:
            return error_response(_STATUS.get(exc.code, 409), exc.code, exc.message)
        if topic:
            rooms = [r for r in rooms if topic in (t.lower() for t in r.topics)]
        if language:
            rooms = [r for r in rooms if language in (x.lower() for x in r.languages)]
        rooms.sort(key=lambda r: (-r.listener_count, -r.created_at))
        return web.json_response({"rooms": to_wire(rooms)})

    async def get_room(self, request: web.Request) -> web.Response:
        try:
            info = await self.service.room_info(RoomId(request.match_info["room_id"]))
        except errors.ChatroomsError as exc:
            return error_response(_STATUS.get(exc.code, 409), exc.code, exc.message)
        return web.json_response({"room": to_wire(info)})

    def _identity(self, request: web.Request) -> Identity:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError(AuthErrorCode.TOKEN_REQUIRED, "send Authorization: Bearer TOKEN")
        identity = self.service.tokens.verify(token.strip())
        if identity.guest and not self.guest_mode:
            raise AuthError(AuthErrorCode.TOKEN_INVALID, "guest tokens are not accepted here")
        return identity

    async def _json_body(self, request: web.Request) -> Any:
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise ProtocolError(s.ProtocolErrorCode.INVALID_MESSAGE, "the body is too large")
        raw = await request.content.read(MAX_BODY + 1)
        if len(raw) > MAX_BODY:
            raise ProtocolError(s.ProtocolErrorCode.INVALID_MESSAGE, "the body is too large")
        try:
            return json.loads(raw or b"{}")
        except ValueError as exc:
            raise ProtocolError(s.ProtocolErrorCode.MALFORMED, "the body is not JSON") from exc

    async def create_room(self, request: web.Request) -> web.Response:
        try:
            identity = self._identity(request)
            body = await self._json_body(request)
            if not isinstance(body, dict):
                raise ProtocolError(s.ProtocolErrorCode.INVALID_MESSAGE, "send a JSON object")
            req = build(s.CreateRoomRequest, body)
            info, token = await self.service.create_room(identity, req)
        except AuthError as exc:
            return error_response(401, exc.code, exc.message)
        except ProtocolError as exc:
            return error_response(400, exc.code, exc.message)
        except errors.ChatroomsError as exc:
            return error_response(_STATUS.get(exc.code, 409), exc.code, exc.message)
        body = to_wire(info)
        return web.json_response({"room": body, "id": info.room_id, "token": token}, status=201)

    async def guest(self, request: web.Request) -> web.Response:
        """A guest identity for a browser (guest mode only)."""
        if not self.guest_mode:
            return error_response(403, errors.ErrorCode.FORBIDDEN, "guest mode is off")
        try:
            body = await self._json_body(request)
        except ProtocolError as exc:
            return error_response(400, exc.code, exc.message)
        name = body.get("name") if isinstance(body, dict) else None
        identity, token = self.service.tokens.issue_guest(name if isinstance(name, str) else None)
        return web.json_response(
            {"user_id": identity.user_id, "name": identity.name, "token": token}, status=201
        )
