"""A full node refuses new WebSockets at once (503 node_full) and keeps its people."""

from __future__ import annotations

import asyncio
import resource
from typing import Any

import aiohttp
import pytest

from signaling.capacity import FD_RESERVE_MIN, FD_RESERVE_SHARE, Capacity, automatic_limit


def test_the_automatic_limit_keeps_a_reserve_of_descriptors() -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    reserve = max(FD_RESERVE_MIN, int(soft * FD_RESERVE_SHARE))
    assert automatic_limit() == max(1, soft - reserve)
    assert automatic_limit() <= soft - FD_RESERVE_MIN


def test_capacity_admits_below_the_limit_and_counts_refusals() -> None:
    used = [0]
    capacity = Capacity(2, lambda: used[0])
    assert capacity.admit() and not capacity.full()
    used[0] = 2
    assert capacity.full() and not capacity.admit() and not capacity.admit()
    assert capacity.refused == 2
    used[0] = 1
    assert capacity.admit() and capacity.refused == 2


async def _wait_for(predicate: Any) -> None:
    for _ in range(100):  # the server's handler ends after the close handshake
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


async def test_a_full_node_answers_503_and_its_people_stay(make_server: Any) -> None:
    server = await make_server(max_connections=2)
    room_id, host_token = await server.create_room("host")
    host = await server.client(room_id, host_token)
    listener = await server.join(room_id, "lena")

    health = await (await server.session.get(server.url + "/healthz")).json()
    assert health["full"] and (health["used"], health["capacity"]) == (2, 2)
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await server.session.ws_connect(server.url + "/ws")
    assert refused.value.status == 503
    assert refused.value.headers is not None and refused.value.headers["Retry-After"] == "1"
    body = await (await server.session.get(server.url + "/ws")).json()
    assert body["error"]["code"] == "node_full"

    # The people inside are not touched: the host's command reaches the listener.
    await host.send({"type": "lock", "id": 1})
    await listener.expect("room_lock_changed")

    await listener.ws.close()
    await _wait_for(lambda: not server.node.endpoint.capacity.full())
    health = await (await server.session.get(server.url + "/healthz")).json()
    assert not health["full"] and health["used"] == 1
    again = await server.client(room_id, host_token)  # room locked: the host may still come
    assert again.joined["type"] == "joined"
    text = await (await server.session.get(server.url + "/metrics")).text()
    assert "chatrooms_capacity 2.0" in text
    assert "chatrooms_refused_full_total 2.0" in text
