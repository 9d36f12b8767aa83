"""The listener bots' lean WebSocket client against aiohttp's server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import WSMsgType, web

from loadtest import wsclient


async def _echo(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(heartbeat=0.05)  # pings: the client must answer them
    await ws.prepare(request)
    await ws.send_bytes(b"hello")
    await ws.send_bytes(b"x" * 70_000)  # a 64-bit length
    async for msg in ws:
        if msg.type is WSMsgType.BINARY:
            if msg.data == b"bye":
                await ws.close(code=4008, message=b"slow")
                break
            await ws.send_bytes(msg.data[::-1])
            await ws.send_str("text " + str(len(msg.data)))
    return ws


@pytest.fixture
async def url() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/ws", _echo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}/ws"
    await runner.cleanup()


async def test_frames_both_ways_pings_and_the_close_code(url: str) -> None:
    ws = await wsclient.connect(url, source="127.0.0.2")
    first = await ws.receive(timeout=2)
    assert (first.type, first.data) == (WSMsgType.BINARY, b"hello")
    assert (await ws.receive(timeout=2)).data == b"x" * 70_000
    await ws.send_bytes(b"abc" * 100)  # a 16-bit length
    got: list[bytes | str] = []
    ws.listen(got.append)  # from now on, frames go to the callback as they are parsed
    await asyncio.sleep(0.3)  # several server pings, answered: the server keeps us
    assert got == [b"cba" * 100, "text 300"]
    assert not ws.closed
    await ws.send_bytes(b"bye")
    await asyncio.wait_for(ws.wait_closed(), 2)
    assert ws.close_code == 4008


async def test_a_refused_upgrade_is_a_connection_error(url: str) -> None:
    with pytest.raises(ConnectionError):
        await wsclient.connect(url.replace("/ws", "/nothing"))


async def test_receive_times_out_and_close_is_bounded(url: str) -> None:
    ws = await wsclient.connect(url)
    await ws.receive(timeout=2)
    await ws.receive(timeout=2)
    with pytest.raises(TimeoutError):
        await ws.receive(timeout=0.05)
    await asyncio.wait_for(ws.close(), 2)
    assert ws.closed and (await ws.receive()).type is WSMsgType.CLOSED


def test_on_uvloop_as_in_the_workers() -> None:
    import uvloop

    async def main() -> list[bytes | str]:
        app = web.Application()
        app.router.add_get("/ws", _echo)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        try:
            ws = await wsclient.connect(f"http://127.0.0.1:{runner.addresses[0][1]}/ws")
            got: list[bytes | str] = []
            ws.listen(got.append)
            await ws.send_bytes(b"ab")
            await asyncio.sleep(0.2)
            await ws.close()
            return got
        finally:
            await runner.cleanup()

    assert uvloop.run(main())[-2:] == [b"ba", "text 2"]


def test_local_ports_cycle_per_address_within_the_range() -> None:
    ports = wsclient.LocalPorts(30_000, 30_003)
    assert [ports.take("127.0.0.2") for _ in range(4)] == [30_000, 30_001, 30_002, 30_000]
    assert ports.take("127.0.0.3") == 30_000  # each address has its own cursor
    with pytest.raises(ValueError):
        wsclient.LocalPorts(80, 2000)


async def test_connect_binds_the_given_ports_and_skips_a_taken_one(url: str) -> None:
    import socket

    with socket.socket() as squatter:
        squatter.bind(("127.0.0.2", 0))
        taken = squatter.getsockname()[1]
        ports = wsclient.LocalPorts(taken, taken + 3)
        first = await wsclient.connect(url, source="127.0.0.2", ports=ports)
        second = await wsclient.connect(url, source="127.0.0.2", ports=ports)
        assert first.transport is not None and second.transport is not None
        local = [ws.transport.get_extra_info("sockname") for ws in (first, second)]
        assert local == [("127.0.0.2", taken + 1), ("127.0.0.2", taken + 2)]
        assert (await first.receive(timeout=2)).data == b"hello"
        for ws in (first, second):
            await asyncio.wait_for(ws.close(), 2)
