"""What signaling/aiohttp_internals.py relies on in aiohttp, and what it is for: a
closed WebSocket is freed by reference counting, not left for a full collection."""

from __future__ import annotations

import asyncio
import gc

from aiohttp import web_protocol, web_request, web_ws

from tests.signaling.conftest import Server

SERVER_SIDE = (web_protocol.RequestHandler, web_ws.WebSocketResponse, web_request.Request)


def test_the_request_handler_still_keeps_the_callback() -> None:
    # If aiohttp renames or drops it, release_websocket silently does nothing: say so.
    assert "_data_received_cb" in web_protocol.RequestHandler.__slots__


def _server_side_garbage() -> list[str]:
    """Server-side aiohttp objects that only a cycle collection would free."""
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        return sorted(type(o).__name__ for o in gc.garbage if isinstance(o, SERVER_SIDE))
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


async def test_a_closed_websocket_leaves_no_cyclic_garbage(server: Server) -> None:
    room_id, token = await server.create_room("host")
    host = await server.client(room_id, token)
    gc.collect()
    gc.disable()  # from here, only reference counting frees anything
    try:
        closed = server.node.counters.closed
        for user in ("lena", "li", "lou"):
            listener = await server.join(room_id, user)
            await listener.ws.close()
        for _ in range(200):
            if server.node.counters.closed >= closed + 3:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)  # the handlers' last steps after counting
        assert server.node.counters.closed == closed + 3
        assert _server_side_garbage() == []
    finally:
        gc.enable()
        await host.ws.close()
