"""The one place that reaches into aiohttp's private state.

aiohttp is not pinned to one version, so tests/signaling/test_aiohttp_internals.py
fails loudly when what this relies on changes (and checks the effect itself: a closed
WebSocket leaves no cyclic garbage).
"""

from __future__ import annotations

from aiohttp import web


def release_websocket(request: web.BaseRequest) -> None:
    """Drop the request handler's reference to a finished WebSocket.

    aiohttp's ``RequestHandler`` keeps the ``WebSocketResponse``'s heartbeat callback (a
    bound method) after the connection has ended: handler → response → request →
    handler, a cycle that only a full garbage collection frees. On a node that freezes
    its long-lived objects (signaling/gctune.py) that means the next full pass, a
    standstill of ~1.4 s at 15,000 connections. Without the reference, reference
    counting frees a closed connection at once.
    """
    protocol = request.protocol
    if getattr(protocol, "_data_received_cb", None) is not None:
        protocol._data_received_cb = None
