"""The `chatrooms` command: `token` prints a verifiable token, `serve` runs a node."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time

import aiohttp

from chatrooms.ids import RoomId
from chatrooms.permissions import Grant
from signaling.auth import TokenService
from signaling.cli import _parser, main, settings_from_args

KEY = "cli-test-secret-0123456789abcdef"


def test_token_prints_a_signed_token_with_grant(capsys: object) -> None:
    assert (
        main(
            [
                "token",
                "--user",
                "u1",
                "--name",
                "Una",
                "--room",
                "r1",
                "--role",
                "host",
                "--ttl",
                "60",
                "--secret",
                KEY,
            ]
        )
        == 0
    )
    out = capsys.readouterr().out.strip()  # type: ignore[attr-defined]
    identity = TokenService(KEY).verify(out)
    assert identity.user_id == "u1" and identity.name == "Una"
    assert identity.grant_for(RoomId("r1")) is Grant.HOST


def test_token_refuses_without_secret_or_half_a_grant(capsys: object) -> None:
    env = os.environ.pop("CHATROOMS_SECRET", None)
    try:
        assert main(["token", "--user", "u", "--name", "U", "--secret", ""]) == 2
        assert main(["token", "--user", "u", "--name", "U", "--room", "r", "--secret", KEY]) == 2
    finally:
        if env is not None:
            os.environ["CHATROOMS_SECRET"] = env


def test_serve_flags_become_settings() -> None:
    defaults = settings_from_args(_parser().parse_args(["serve", "--host", "127.0.0.1"]))
    assert defaults.guest_mode  # on by default on loopback
    assert (defaults.gc_freeze_interval, defaults.gc_full_interval) == (1.0, 3600.0)
    args = _parser().parse_args(
        [
            "serve", "--host", "0.0.0.0", "--port", "9000", "--gc-freeze", "2",
            "--gc-full-every", "0", "--udp-ports", "40000-40100", "--audio-slots", "4",
            "--redis", "redis://127.0.0.1:6379/0", "--redis-cluster", "--max-connections", "9",
        ]
    )  # fmt: skip
    settings = settings_from_args(args)
    assert not settings.guest_mode  # not on loopback
    assert settings.port == 9000 and settings.audio_slots == 4
    assert (settings.gc_freeze_interval, settings.gc_full_interval) == (2.0, 0.0)
    assert (settings.udp_port_min, settings.udp_port_max) == (40000, 40100)
    assert settings.redis_url == "redis://127.0.0.1:6379/0" and settings.redis_cluster
    assert settings.max_connections == 9 and defaults.max_connections == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_serve_answers_health_lobby_and_page() -> None:
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "signaling",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + 30  # a bound on waiting, not an assertion
            while True:
                try:
                    res = await session.get(f"http://127.0.0.1:{port}/healthz")
                    break
                except aiohttp.ClientConnectionError:
                    assert time.monotonic() < deadline, "server did not start"
                    await asyncio.sleep(0.1)
            assert res.status == 200 and (await res.json())["status"] == "ok"
            lobby = await session.get(f"http://127.0.0.1:{port}/api/rooms")
            assert (await lobby.json()) == {"rooms": []}
            page = await session.get(f"http://127.0.0.1:{port}/")
            assert page.status == 200 and "<html" in await page.text()
            # Guests are on by default on loopback: a guest may create a room.
            guest = await (await session.post(f"http://127.0.0.1:{port}/api/guest", json={})).json()
            created = await session.post(
                f"http://127.0.0.1:{port}/api/rooms",
                json={"title": "Hello"},
                headers={"Authorization": "Bearer " + guest["token"]},
            )
            assert created.status == 201
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)
