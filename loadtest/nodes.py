"""The server side of a run: reading each node's ``/metrics`` every second, and
``cluster``: a local redis-server and N ``chatrooms serve`` nodes, started and stopped
with the run (no orphans, also on Ctrl-C and on errors)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import aiohttp

WANTED = {
    "process_cpu_seconds_total": "cpu_s",
    "process_resident_memory_bytes": "rss",
    "chatrooms_connections": "connections",
    "chatrooms_listeners": "listeners",
    "chatrooms_slow_consumers_total": "slow_consumers",
}


def parse_metrics(text: str) -> dict[str, float]:
    """The few samples we want from Prometheus text (no labels)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        name, _, value = line.partition(" ")
        key = WANTED.get(name)
        if key is not None:
            with contextlib.suppress(ValueError):
                out[key] = float(value.split()[0])
    return out


@dataclass
class NodeSeries:
    url: str
    t: list[float] = field(default_factory=list)
    cpu_pct: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    connections: list[float] = field(default_factory=list)
    failures: int = 0
    last: dict[str, float] = field(default_factory=dict)
    _prev: tuple[float, float] | None = None

    def add(self, now: float, sample: dict[str, float]) -> None:
        self.last = sample
        cpu = sample.get("cpu_s")
        if cpu is None:
            return
        if self._prev is not None and now > self._prev[0]:
            self.t.append(now)
            self.cpu_pct.append(100.0 * (cpu - self._prev[1]) / (now - self._prev[0]))
            self.rss_mb.append(sample.get("rss", 0.0) / 2**20)
            self.connections.append(sample.get("connections", 0.0))
        self._prev = (now, cpu)


async def scrape(urls: list[str], series: list[NodeSeries], stop: asyncio.Event) -> None:
    """Read every node's /metrics once a second until ``stop``."""
    timeout = aiohttp.ClientTimeout(total=2.0)
    async with aiohttp.ClientSession(timeout=timeout) as http:

        async def one(url: str, node: NodeSeries) -> None:
            try:
                async with http.get(url + "/metrics") as res:
                    text = await res.text()
                node.add(time.time(), parse_metrics(text))
            except (aiohttp.ClientError, OSError, TimeoutError):
                node.failures += 1

        while not stop.is_set():
            await asyncio.gather(*(one(u, n) for u, n in zip(urls, series, strict=True)))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports. The sockets stay bound until all are
    picked: released one by one, the kernel may hand the same port out twice."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]


class Cluster:
    """redis-server (for N > 1) and N nodes on 127.0.0.1; ``stop()`` ends them all."""

    def __init__(self, nodes: int, out: Path, guests: bool = True) -> None:
        self.count = nodes
        self.out = out
        self.guests = guests
        self.secret = secrets.token_urlsafe(32)
        self.redis_url: str | None = None
        self.procs: list[subprocess.Popen[bytes]] = []
        self.redis: subprocess.Popen[bytes] | None = None
        self.urls: list[str] = []
        self.killed: set[int] = set()
        self._logs: list[IO[bytes]] = []

    def _log(self, name: str) -> IO[bytes]:
        fh = open(self.out / name, "wb")  # noqa: SIM115 - closed in stop()
        self._logs.append(fh)
        return fh

    def start(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        ports = free_ports(self.count + 1)  # the last one for redis-server
        if self.count > 1:
            server = shutil.which("redis-server")
            if server is None:
                raise RuntimeError("redis-server is not installed (needed for --nodes > 1)")
            port = ports[-1]
            self.redis = subprocess.Popen(
                [
                    server,
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--protected-mode",
                    "no",
                ],
                stdout=self._log("redis.log"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            self.redis_url = f"redis://127.0.0.1:{port}/0"
        env = dict(os.environ, CHATROOMS_SECRET=self.secret)
        for i in range(self.count):
            port = ports[i]
            cmd = [
                sys.executable,
                "-m",
                "signaling",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--ice-address",
                "127.0.0.1",
                "--guests" if self.guests else "--no-guests",
                "--log-level",
                "WARNING",
            ]
            if self.redis_url:
                cmd += ["--redis", self.redis_url]
            self.procs.append(
                subprocess.Popen(
                    cmd,
                    env=env,
                    stdout=self._log(f"node-{i}.log"),
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
            self.urls.append(f"http://127.0.0.1:{port}")

    async def wait_ready(self, limit: float = 30.0) -> None:
        if self.redis is not None:
            await self._wait_redis(limit)
        deadline = time.monotonic() + limit
        timeout = aiohttp.ClientTimeout(total=1.0)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            for i, url in enumerate(self.urls):
                while True:
                    code = self.procs[i].poll()
                    if code is not None:
                        raise RuntimeError(f"node {i} exited with {code}: {self.tail(i)}")
                    with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                        async with http.get(url + "/healthz") as res:
                            if res.status == 200:
                                break
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"node {i} not healthy in {limit:.0f} s")
                    await asyncio.sleep(0.1)

    async def _wait_redis(self, limit: float) -> None:
        assert self.redis_url is not None and self.redis is not None
        port = int(self.redis_url.rsplit(":", 1)[1].split("/")[0])
        deadline = time.monotonic() + limit
        while True:
            if self.redis.poll() is not None:
                raise RuntimeError("redis-server exited; see redis.log")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                await asyncio.sleep(0.05)

    def tail(self, i: int) -> str:
        with contextlib.suppress(OSError):
            self._logs[i + (1 if self.redis is not None else 0)].flush()
            text = (self.out / f"node-{i}.log").read_text(errors="replace")
            return text[-1500:]
        return ""

    def kill(self, i: int) -> None:
        """SIGKILL one node (node-kill scenario)."""
        self.killed.add(i)
        with contextlib.suppress(ProcessLookupError):
            self.procs[i].send_signal(signal.SIGKILL)

    def stop(self) -> None:
        procs = [*self.procs, *([self.redis] if self.redis is not None else [])]
        for proc in procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 8.0
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5.0)
        for fh in self._logs:
            fh.close()
