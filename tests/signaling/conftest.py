"""A real server on a free loopback port, and WebSocket clients that speak the protocol."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp
import msgpack
import pytest
from aiohttp import web

from signaling.app import NODE, Node, create_app
from signaling.config import Settings

SECRET = "test-secret-" + "x" * 20


@dataclass
class Server:
    url: str
    app: web.Application
    session: aiohttp.ClientSession

    @property
    def node(self) -> Node:
        return self.app[NODE]

    def token(self, user: str, name: str | None = None, **kw: Any) -> str:
        return self.node.service.tokens.issue(user, name or user.title(), **kw)

    async def create_room(
        self, host: str = "host", *, title: str = "Morning coffee", **body: Any
    ) -> tuple[str, str]:
        """Create a room as ``host``; returns (room_id, the host's token with its grant)."""
        res = await self.session.post(
            self.url + "/api/rooms",
            json={"title": title, **body},
            headers={"Authorization": "Bearer " + self.token(host)},
        )
        assert res.status == 201, await res.text()
        data = await res.json()
        return data["id"], data["token"]

    async def client(
        self,
        room_id: str,
        token: str | None = None,
        *,
        binary: bool = False,
        name: str | None = None,
    ) -> Client:
        ws = await self.session.ws_connect(self.url + "/ws", max_msg_size=0)
        client = Client(ws, binary)
        msg: dict[str, Any] = {"type": "join", "room_id": room_id}
        if token is not None:
            msg["token"] = token
        if name is not None:
            msg["name"] = name
        await client.send(msg)
        client.joined = await client.expect("joined")
        return client

    async def join(self, room_id: str, user: str, **kw: Any) -> Client:
        return await self.client(room_id, self.token(user), **kw)


@dataclass
class Client:
    ws: aiohttp.ClientWebSocketResponse
    binary: bool = False
    joined: dict[str, Any] = field(default_factory=dict)
    inbox: list[dict[str, Any]] = field(default_factory=list)
    next_id: int = 1

    @property
    def user_id(self) -> str:
        return str(self.joined["you"]["user_id"])

    async def send(self, msg: dict[str, Any]) -> None:
        if self.binary:
            await self.ws.send_bytes(msgpack.packb(msg))
        else:
            await self.ws.send_str(json.dumps(msg))

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=timeout)
        if msg.type is aiohttp.WSMsgType.BINARY:
            data: dict[str, Any] = msgpack.unpackb(msg.data)
            return data
        if msg.type is aiohttp.WSMsgType.TEXT:
            data = json.loads(msg.data)
            return data
        raise ConnectionError(f"socket closed: {msg.type} {msg.data} {msg.extra}")

    async def expect(
        self,
        kind: str,
        where: Callable[[dict[str, Any]], bool] = lambda m: True,
        timeout: float = 5.0,
    ) -> dict[str, Any]:
        """The first message of this type (read from the inbox first, then the socket)."""
        for i, msg in enumerate(self.inbox):
            if msg["type"] == kind and where(msg):
                del self.inbox[i]
                return msg
        async with asyncio.timeout(timeout):
            while True:
                msg = await self.recv(timeout)
                if msg["type"] == kind and where(msg):
                    return msg
                self.inbox.append(msg)

    async def call(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Send a command with an id and return its ack or error."""
        request_id = self.next_id
        self.next_id += 1
        await self.send({"type": kind, "id": request_id, **fields})
        async with asyncio.timeout(5):
            while True:
                msg = await self.recv()
                if msg["type"] in ("ack", "error") and msg.get("id") == request_id:
                    return msg
                self.inbox.append(msg)

    async def ok(self, kind: str, **fields: Any) -> None:
        reply = await self.call(kind, **fields)
        assert reply["type"] == "ack", reply

    async def refused(self, kind: str, code: str, **fields: Any) -> dict[str, Any]:
        reply = await self.call(kind, **fields)
        assert reply["type"] == "error", reply
        assert reply["code"] == code, reply
        return reply

    async def drain(self, quiet: float = 0.2) -> list[dict[str, Any]]:
        """Everything that arrives until the socket is quiet for ``quiet`` seconds."""
        got = list(self.inbox)
        self.inbox.clear()
        while True:
            try:
                got.append(await self.recv(quiet))
            except TimeoutError:
                return got

    async def closed(self, timeout: float = 5.0) -> tuple[int | None, list[dict[str, Any]]]:
        """Read until the server closes; returns the close code and what came before."""
        seen = list(self.inbox)
        self.inbox.clear()
        async with asyncio.timeout(timeout):
            while True:
                msg = await self.ws.receive()
                if msg.type in (
                    aiohttp.WSMsgType.CLOSE,
                    aiohttp.WSMsgType.CLOSED,
                    aiohttp.WSMsgType.CLOSING,
                ):
                    # The code the server sent; ws.close_code may be overwritten by the
                    # client's own closing handshake racing the server's transport close.
                    if msg.type is aiohttp.WSMsgType.CLOSE:
                        return int(msg.data), seen
                    return self.ws.close_code, seen
                if msg.type is aiohttp.WSMsgType.TEXT:
                    seen.append(json.loads(msg.data))
                elif msg.type is aiohttp.WSMsgType.BINARY:
                    seen.append(msgpack.unpackb(msg.data))

    async def close(self) -> None:
        await self.ws.close()


ServerFactory = Callable[..., Any]


@pytest.fixture
async def make_server() -> AsyncIterator[Callable[..., Any]]:
    runners: list[web.AppRunner] = []
    sessions: list[aiohttp.ClientSession] = []

    async def start(**overrides: Any) -> Server:
        settings = replace(
            Settings(secret=SECRET, guest_mode=True, stats_interval=0.2, reconnect_grace=0.5),
            **overrides,
        )
        app = create_app(settings)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        session = aiohttp.ClientSession()
        sessions.append(session)
        return Server(f"http://127.0.0.1:{port}", app, session)

    yield start
    for session in sessions:
        await session.close()
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def server(make_server: Callable[..., Any]) -> Server:
    srv: Server = await make_server()
    return srv
