"""Benchmark of the Redis backend: commits per second through one Redis, how long an
event takes from one node's commit to another node's subscriber, and the added latency
of audio crossing nodes on the media bus.

    python -m loadtest.redis_bench --redis redis://127.0.0.1:6379/15 --seconds 10 --json out.json
    python -m loadtest.redis_bench --cluster --seconds 10     # a Redis Cluster of three

Without --redis it starts a redis-server on a free loopback port (no persistence), or
with --cluster three cluster-enabled ones made a cluster, and stops them at the end. It
uses the server's own store, bus and media bus classes, with two "nodes" (two clients)
in one process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from chatrooms.events import Event
from chatrooms.ids import RoomId, UserId
from chatrooms.ports import MediaPacket
from chatrooms.room import Room
from loadtest.nodes import free_ports
from signaling.backends.redis_bus import RedisEventBus
from signaling.backends.redis_client import Client
from signaling.backends.redis_media import RedisMediaBus
from signaling.backends.redis_store import RedisRoomStore


def _pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


@contextlib.contextmanager
def _redis_servers(count: int, *, cluster: bool) -> Iterator[list[int]]:
    """``count`` redis-servers on free loopback ports, without persistence."""
    picked = free_ports(2 * count)  # distinct: each server's port, then its bus port
    ports, bus_ports = picked[:count], picked[count:]
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for port, bus_port in zip(ports, bus_ports, strict=True):
                directory = f"{tmp}/{port}"
                os.mkdir(directory)
                extra = ["--cluster-enabled", "yes", "--cluster-port", str(bus_port)]
                procs.append(subprocess.Popen(
                    [shutil.which("redis-server") or "redis-server", "--port", str(port),
                     "--bind", "127.0.0.1", "--dir", directory, "--save", "",
                     "--appendonly", "no", *(extra if cluster else [])],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                ))  # fmt: skip
            for port in ports:
                for _ in range(200):
                    with (
                        contextlib.suppress(OSError),
                        socket.create_connection(("127.0.0.1", port)),
                    ):
                        break
                    time.sleep(0.05)
            yield ports
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(10)


@contextlib.contextmanager
def _redis_server() -> Iterator[str]:
    with _redis_servers(1, cluster=False) as ports:
        yield f"redis://127.0.0.1:{ports[0]}/0"


@contextlib.contextmanager
def _redis_cluster() -> Iterator[str]:
    with _redis_servers(3, cluster=True) as ports:
        subprocess.run(
            [shutil.which("redis-cli") or "redis-cli", "--cluster", "create",
             *(f"127.0.0.1:{p}" for p in ports), "--cluster-replicas", "0", "--cluster-yes"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60,
        )  # fmt: skip
        for port in ports:  # every primary must agree that the cluster is up
            for _ in range(200):
                out = subprocess.run(
                    [shutil.which("redis-cli") or "redis-cli", "-p", str(port), "cluster", "info"],
                    capture_output=True, text=True, timeout=10,
                ).stdout  # fmt: skip
                if "cluster_state:ok" in out:
                    break
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{ports[0]}/0"


class _Clients:
    """Makes clients of one Redis, or of a Redis Cluster."""

    def __init__(self, url: str, cluster: bool) -> None:
        self.url, self.cluster = url, cluster

    def __call__(self) -> Client:
        if self.cluster:
            return RedisCluster.from_url(self.url)
        return aioredis.Redis.from_url(self.url)


async def _commits(connect: _Clients, seconds: float, writers: int) -> dict[str, Any]:
    """Writers on two nodes toggle the lock of one room as fast as they can."""
    a, b = connect(), connect()
    store_a, store_b = RedisRoomStore(a), RedisRoomStore(b)
    room = Room.create(
        room_id=RoomId("bench"), host_id=UserId("host"), host_name="Host", title="b", now=0
    )
    await store_a.drop(room.room_id)
    await store_a.create(room)
    arrivals: list[float] = []
    sent_at: dict[int, float] = {}
    bus_b = RedisEventBus(b, store_b)

    def on_events(room_id: RoomId, events: Sequence[Event]) -> None:
        now = time.perf_counter()
        for e in events:
            t = sent_at.get(e.version)
            if t is not None:
                arrivals.append((now - t) * 1000)

    await bus_b.subscribe(room.room_id, on_events)
    await asyncio.sleep(0.5)
    done = 0
    stop = time.perf_counter() + seconds

    def toggle(r: Room) -> list[Event]:
        events = r.set_locked(UserId("host"), not r.locked)
        sent_at[r.version] = time.perf_counter()
        return events

    async def writer(store: RedisRoomStore) -> None:
        nonlocal done
        while time.perf_counter() < stop:
            await store.apply(room.room_id, toggle, (UserId("host"),))
            done += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(writer(store_a if i % 2 else store_b) for i in range(writers)))
    elapsed = time.perf_counter() - t0
    await asyncio.sleep(0.5)
    await bus_b.close()
    await store_a.drop(room.room_id)
    await a.aclose()
    await b.aclose()
    return {
        "commits_per_s": done / elapsed,
        "writers": writers,
        "event_ms_p50": _pct(arrivals, 50),
        "event_ms_p99": _pct(arrivals, 99),
        "events_measured": len(arrivals),
        "conflict_retries": store_a.conflicts + store_b.conflicts,
    }


async def _listener_joins(connect: _Clients, seconds: float, tasks: int) -> dict[str, Any]:
    """Plain listeners joining through the audience-only script."""
    client = connect()
    store = RedisRoomStore(client)
    room = Room.create(
        room_id=RoomId("joins"), host_id=UserId("host"), host_name="Host", title="j", now=0
    )
    await store.drop(room.room_id)
    await store.create(room)
    count = 0
    stop = time.perf_counter() + seconds

    async def joiner(k: int) -> None:
        nonlocal count
        i = 0
        while time.perf_counter() < stop:
            await store.join(room.room_id, UserId(f"u{k}-{i}"), "L", now=time.time(), grant=None)
            i += 1
            count += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(joiner(k) for k in range(tasks)))
    elapsed = time.perf_counter() - t0
    await store.drop(room.room_id)
    await client.aclose()
    return {"joins_per_s": count / elapsed}


async def _media(connect: _Clients, seconds: float, speakers: int) -> dict[str, Any]:
    """Speakers' packets at 50 pps each from node a, received by node b's media bus."""
    a, b = connect(), connect()
    bus_a, bus_b = RedisMediaBus(a, "a"), RedisMediaBus(b, "b")
    delays: list[float] = []

    def on_packet(room_id: RoomId, p: MediaPacket) -> None:
        delays.append((time.time() - p.sent_at) * 1000)

    room_id = RoomId("media")
    await bus_b.subscribe(room_id, on_packet)
    await bus_a.subscribe(room_id, lambda r, p: None)
    await asyncio.sleep(0.5)
    sent = 0
    payload = bytes(80)
    t_end = time.perf_counter() + seconds
    seq = 0
    while time.perf_counter() < t_end:
        for s in range(speakers):
            bus_a.publish(
                room_id, MediaPacket("a", UserId(f"s{s}"), seq, seq * 960, 30, payload, time.time())
            )
            sent += 1
        seq += 1
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.5)
    await bus_a.close()
    await bus_b.close()
    await a.aclose()
    await b.aclose()
    return {
        "media_sent": sent,
        "media_received": len(delays),
        "media_ms_p50": _pct(delays, 50),
        "media_ms_p99": _pct(delays, 99),
        "media_ms_mean": statistics.fmean(delays) if delays else float("nan"),
    }


async def _run(connect: _Clients, seconds: float) -> dict[str, Any]:
    result: dict[str, Any] = {"cluster": connect.cluster}
    single = await _commits(connect, seconds, writers=1)
    result["commits_per_s_one_writer"] = single["commits_per_s"]
    result["event_ms_p50_one_writer"] = single["event_ms_p50"]
    result["event_ms_p99_one_writer"] = single["event_ms_p99"]
    result.update(await _commits(connect, seconds, writers=8))
    result.update(await _listener_joins(connect, seconds, tasks=16))
    result.update(await _media(connect, seconds, speakers=3))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.redis_bench")
    parser.add_argument("--redis", help="a Redis to use (default: start one)")
    parser.add_argument(
        "--cluster", action="store_true", help="a Redis Cluster (started if no --redis)"
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        start = _redis_cluster if args.cluster else _redis_server
        url = args.redis or stack.enter_context(start())
        result = asyncio.run(_run(_Clients(url, args.cluster), args.seconds))
    width = max(len(k) for k in result)
    for key, value in result.items():
        shown = f"{value:.2f}" if isinstance(value, float) else value
        print(f"{key:<{width}}  {shown}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
