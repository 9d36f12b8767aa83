"""``create_app(settings)``: the one factory that builds a node and owns its services."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

from aiohttp import web
from aiohttp.typedefs import Handler

from signaling.auth import TokenService
from signaling.backends.factory import Backends, make_backends
from signaling.config import Settings
from signaling.connection import Counters
from signaling.gctune import GcTuner
from signaling.http_api import HttpApi, error_response
from signaling.hub import Hub
from signaling.media import MediaService, sfu_settings
from signaling.metrics import Gauges, Metrics, Traffic
from signaling.service import RoomService
from signaling.sfu import Sfu
from signaling.ws import WebSocketEndpoint

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Node:
    """Everything one running node is made of."""

    settings: Settings
    backends: Backends
    hub: Hub
    service: RoomService
    media: MediaService
    endpoint: WebSocketEndpoint
    metrics: Metrics
    traffic: Traffic
    counters: Counters
    gc: GcTuner


NODE = web.AppKey("node", Node)


def build_node(settings: Settings) -> Node:
    backends = make_backends(settings)
    hub = Hub(
        backends.store,
        large_room=settings.large_room,
        large_room_every=settings.large_room_stats_every,
    )
    tokens = TokenService(settings.secret)
    media = MediaService(
        Sfu(sfu_settings(settings)),
        hub,
        backends.media,
        settings.node_id,
        large_room=settings.large_room,
    )
    hub.observers.append(media.on_events)
    service = RoomService(
        settings=settings,
        store=backends.store,
        bus=backends.bus,
        presence=backends.presence,
        hub=hub,
        tokens=tokens,
        media_config=media.config,
    )
    traffic, counters = Traffic(), Counters()
    tuner = GcTuner(
        settings.gc_freeze_interval,
        settings.gc_full_interval,
        closed=lambda: counters.closed,
        live=lambda: hub.connection_count,
    )

    def listeners() -> int:
        total = 0
        for room_id in list(hub._rooms):
            room = backends.store.cached(room_id)
            total += room.listener_count if room is not None else 0
        return total

    endpoint = WebSocketEndpoint(
        service=service,
        media=media,
        traffic=traffic,
        counters=counters,
        guest_mode=settings.guest_mode,
        max_message_size=settings.max_message_size,
        heartbeat=settings.heartbeat,
        join_timeout=settings.join_timeout,
        queue_size=settings.send_queue_size,
        coalesce_drop_at=settings.coalesce_drop_at,
        commands_per_second=settings.commands_per_second,
        command_burst=settings.command_burst,
        max_connections=settings.max_connections,
    )
    metrics = Metrics(
        traffic,
        counters,
        tuner.passes,
        endpoint.capacity,
        Gauges(
            connections=lambda: hub.connection_count,
            rooms=lambda: len(hub._rooms),
            listeners=listeners,
        ),
    )
    return Node(
        settings, backends, hub, service, media, endpoint, metrics, traffic, counters, tuner
    )


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Unknown API paths and methods answer JSON, like every other API error."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if not request.path.startswith("/api/") or exc.status < 400:
            raise
        return error_response(exc.status, "http_" + str(exc.status), exc.reason)


def create_app(settings: Settings) -> web.Application:
    if not settings.node_id:
        settings = replace(settings, node_id="node-" + secrets.token_hex(4))
    node = build_node(settings)
    app = web.Application(middlewares=[json_errors], client_max_size=64 * 1024)
    app[NODE] = node

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await node.backends.check(settings)
        node.backends.bus.on_resync = node.hub.resync
        await node.backends.presence.start(node.service.evict)
        loop = asyncio.get_running_loop()
        stats = loop.create_task(node.hub.run_stats(settings.stats_interval))
        background = [stats]
        if settings.gc_freeze_interval > 0:
            background.append(loop.create_task(node.gc.run()))
        yield
        for task in background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await node.media.close()
        await node.service.close()
        await node.backends.close()

    async def on_shutdown(app: web.Application) -> None:
        await node.endpoint.shutdown()

    app.cleanup_ctx.append(lifecycle)
    app.on_shutdown.append(on_shutdown)
    api = HttpApi(
        node.service, node.metrics, settings.guest_mode, settings.node_id, node.endpoint.capacity
    )
    app.add_routes(api.routes())
    app.router.add_get("/ws", node.endpoint.handle)
    index = settings.static_dir / "index.html"

    async def lobby(request: web.Request) -> web.FileResponse:
        return web.FileResponse(index)

    if index.exists():
        app.router.add_get("/", lobby)
        app.router.add_static("/static/", settings.static_dir, show_index=False)
    return app
