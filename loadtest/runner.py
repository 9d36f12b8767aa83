"""The coordinator of a run: rooms, the driver bots, the worker processes, the phases,
the progress line, node metrics, and the report at the end (also on Ctrl-C)."""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing
import os
import random
import signal
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp

from loadtest.bot import JoinStats
from loadtest.common import raise_fd_limit, source_addresses
from loadtest.driver import DriverConfig, RoomDriver, RoomLog
from loadtest.nodes import Cluster, NodeSeries, scrape
from loadtest.worker import BotSpec, WorkerPlan, worker_main

JOIN_GRACE = 30.0  # after the ramp, wait at most this long for the last joins
DRAIN = 1.5  # after the last probe and packet, before the workers stop
FD_MARGIN = 1000


@dataclass
class RunConfig:
    urls: list[str]
    rooms: int
    listeners: int
    media_listeners: int
    speakers: int
    hand_raisers: int
    ramp: float
    duration: float
    workers: int
    seed: int
    out: Path
    secret: str | None
    scenario: str
    probe_interval: float
    churn: bool
    churn_interval: float
    kill_after: float | None  # node-kill: seconds into the steady phase
    quiet: bool = False


class Interrupted(Exception):
    pass


class Minter:
    """Signed tokens for bots (``--secret``): user id ``lt-...``, a day long."""

    def __init__(self, secret: str) -> None:
        from signaling.auth import TokenService

        self._service = TokenService(secret)

    def __call__(self, user: str) -> str:
        return self._service.issue(user, user)


LOCAL_PORTS = (20_000, 61_000)


def plan_workers(cfg: RunConfig, room_ids: list[str], tokens: Any) -> list[WorkerPlan]:
    total = cfg.listeners + cfg.media_listeners
    media: set[int] = set()
    if cfg.media_listeners:
        step = total / cfg.media_listeners
        media = {min(total - 1, int(k * step)) for k in range(cfg.media_listeners)}
    addresses = source_addresses(max(2, math.ceil(total / 10_000)))
    per_worker: list[list[BotSpec]] = [[] for _ in range(cfg.workers)]
    for i in range(total):
        per_worker[i % cfg.workers].append(
            BotSpec(
                index=i,
                media=i in media,
                room=i % len(room_ids),
                url_index=i % len(cfg.urls),
                source=addresses[i % len(addresses)],
                token=tokens(f"lt-l{i}") if tokens else None,
            )
        )
    # Local ports 20000-60999 (above most services), a disjoint slice per worker.
    span = (LOCAL_PORTS[1] - LOCAL_PORTS[0]) // cfg.workers
    return [
        WorkerPlan(
            worker=w,
            urls=tuple(cfg.urls),
            rooms=tuple(room_ids),
            bots=tuple(bots),
            ramp=cfg.ramp,
            local_ports=(LOCAL_PORTS[0] + w * span, LOCAL_PORTS[0] + (w + 1) * span),
        )
        for w, bots in enumerate(per_worker)
    ]


async def _create_rooms(cfg: RunConfig, tokens: Any) -> list[tuple[str, str]]:
    """(room id, host token with its grant) per room, through the first node's HTTP API."""
    out = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as http:
        for r in range(cfg.rooms):
            if tokens:
                token = tokens(f"lt-r{r}-host")
            else:
                async with http.post(cfg.urls[0] + "/api/guest", json={"name": "host"}) as res:
                    if res.status != 201:
                        raise RuntimeError(f"POST /api/guest: {res.status} {await res.text()}")
                    token = (await res.json())["token"]
            body = {
                "title": f"loadtest {cfg.scenario} {r}",
                "topics": ["loadtest"],
                "stage_size": max(1, min(50, cfg.speakers + cfg.hand_raisers + 2)),
            }
            async with http.post(
                cfg.urls[0] + "/api/rooms", json=body, headers={"Authorization": "Bearer " + token}
            ) as res:
                if res.status != 201:
                    raise RuntimeError(f"POST /api/rooms: {res.status} {await res.text()}")
                data = await res.json()
            out.append((str(data["id"]), str(data["token"])))
    return out


def _no_token(user: str) -> str | None:
    return None


class Coordinator:
    def __init__(self, cfg: RunConfig, cluster: Cluster | None = None) -> None:
        self.cfg = cfg
        self.cluster = cluster
        self.interrupted = asyncio.Event()
        self.progress: dict[int, dict[str, Any]] = {}
        self.results: dict[int, dict[str, Any]] = {}
        self.meta: dict[str, Any] = {}
        self.progress_log: list[dict[str, Any]] = []

    def _say(self, text: str) -> None:
        if not self.cfg.quiet:
            print(text, flush=True)

    async def run(self) -> dict[str, Any]:
        from loadtest.report import build_report

        cfg = self.cfg
        random.seed(cfg.seed)
        raise_fd_limit()
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGINT, self.interrupted.set)
            loop.add_signal_handler(signal.SIGTERM, self.interrupted.set)
        tokens = Minter(cfg.secret) if cfg.secret else None

        series = [NodeSeries(u) for u in cfg.urls]
        scrape_stop = asyncio.Event()
        scraper = asyncio.create_task(scrape(cfg.urls, series, scrape_stop))
        ctx = multiprocessing.get_context("spawn")
        procs: list[Any] = []
        pipes: list[Connection] = []
        drivers: list[RoomDriver] = []
        driver_stats = JoinStats()
        driver_stop = asyncio.Event()
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=True))
        self.meta = {"started": time.time(), "partial": False, "phase": "setup"}
        try:
            rooms = await self._step(_create_rooms(cfg, tokens), 30.0)
            logs = [RoomLog(i, rid) for i, (rid, _) in enumerate(rooms)]
            dcfg = DriverConfig(
                urls=tuple(cfg.urls),
                speakers=cfg.speakers,
                hand_raisers=cfg.hand_raisers,
                probe_interval=cfg.probe_interval,
                churn=cfg.churn,
                churn_interval=cfg.churn_interval,
            )
            for log, (_, host_token) in zip(logs, rooms, strict=True):
                drivers.append(
                    RoomDriver(
                        log,
                        dcfg,
                        host_token,
                        tokens or (lambda _u: None),
                        lambda: session,
                        driver_stats,
                        driver_stop,
                    )
                )
            plans = plan_workers(cfg, [rid for rid, _ in rooms], tokens)
            for plan in plans:
                parent, child = ctx.Pipe()
                proc = ctx.Process(target=worker_main, args=(child, plan), daemon=True)
                proc.start()
                procs.append(proc)
                pipes.append(parent)
            await self._step(asyncio.gather(*(d.start() for d in drivers)), 120.0)
            self._say(f"room(s) {', '.join(r for r, _ in rooms)}: host and stage ready")
            await self._step(self._wait_ready(pipes), 120.0)
            total = cfg.listeners + cfg.media_listeners
            t0 = time.time() + 0.5
            ramp_end = t0 + total / cfg.ramp
            hard_end = ramp_end + JOIN_GRACE + cfg.duration + 60.0
            for pipe in pipes:
                pipe.send(("go", t0, hard_end))
            self.meta.update(t0=t0, ramp_end=ramp_end, phase="ramp")
            acting = [asyncio.create_task(d.run()) for d in drivers]
            await self._phases(pipes, drivers, series, t0, ramp_end, total)
            # End: stop counting and probing, let the last packets and events arrive.
            audio_end = time.time()
            for d in drivers:
                d.log.counting = False
                d.acting.set()
            self.meta["audio_end"] = audio_end
            await asyncio.wait(acting, timeout=15.0)
            await asyncio.sleep(DRAIN)
        except Interrupted:
            self.meta["partial"] = True
            self._say("interrupted: stopping, partial report")
        finally:
            self.meta.setdefault("audio_end", time.time())
            for d in drivers:
                d.log.counting = False
                d.acting.set()
            for pipe in pipes:
                with contextlib.suppress(OSError, BrokenPipeError):
                    pipe.send(("stop", self.meta["audio_end"]))
            await self._collect(pipes, 90.0)
            for d in drivers:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(d.finish(), 30.0)
            driver_stop.set()
            scrape_stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(scraper, 5.0)
            await session.close()
            for proc in procs:
                proc.join(timeout=10)
                if proc.is_alive():
                    proc.terminate()
                    proc.join(timeout=5)
        self.meta["ended"] = time.time()
        report = build_report(
            cfg,
            list(self.results.values()),
            [d.log for d in drivers],
            series,
            self.meta,
            driver_stats,
            self.progress_log,
        )
        return report

    async def _step(self, aw: Any, limit: float) -> Any:
        """Await with a limit; Ctrl-C interrupts."""
        task = asyncio.ensure_future(aw)
        stopper = asyncio.create_task(self.interrupted.wait())
        done, _ = await asyncio.wait({task, stopper}, timeout=limit, return_when="FIRST_COMPLETED")
        stopper.cancel()
        if task in done:
            return task.result()
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        if self.interrupted.is_set():
            raise Interrupted
        raise TimeoutError(f"setup step did not finish in {limit:.0f} s")

    async def _wait_ready(self, pipes: list[Connection]) -> None:
        waiting = set(range(len(pipes)))
        while waiting:
            for w in list(waiting):
                if pipes[w].poll():
                    message = pipes[w].recv()
                    if message[0] == "ready":
                        waiting.discard(w)
            await asyncio.sleep(0.05)

    def _drain(self, pipes: list[Connection]) -> None:
        for pipe in pipes:
            with contextlib.suppress(EOFError, OSError):
                while pipe.poll():
                    message = pipe.recv()
                    if message[0] == "progress":
                        self.progress[message[1]] = message[2]
                    elif message[0] == "result":
                        self.results[message[1]] = message[2]

    async def _collect(self, pipes: list[Connection], limit: float) -> None:
        deadline = time.time() + limit
        while len(self.results) < len(pipes) and time.time() < deadline:
            self._drain(pipes)
            if all(p.closed for p in pipes):
                break
            await asyncio.sleep(0.05)
        self._drain(pipes)

    def _sum(self, key: str) -> int:
        return sum(int(p.get(key, 0)) for p in self.progress.values())

    async def _phases(
        self,
        pipes: list[Connection],
        drivers: list[RoomDriver],
        series: list[NodeSeries],
        t0: float,
        ramp_end: float,
        total: int,
    ) -> None:
        cfg = self.cfg
        steady_start: float | None = None
        steady_end = math.inf
        kill_at = math.inf
        kill_task: asyncio.Task[None] | None = None
        last = (t0, 0)
        cpu_last = (time.time(), 0.0)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.interrupted.wait(), 1.0)
            if self.interrupted.is_set():
                raise Interrupted
            self._drain(pipes)
            now = time.time()
            joined, failed = self._sum("joined"), self._sum("failed")
            done = joined + self._sum("gave_up")
            if (
                steady_start is None
                and now >= ramp_end
                and (joined >= total or now >= ramp_end + JOIN_GRACE or done >= total)
            ):
                steady_start = now
                steady_end = now + cfg.duration
                self.meta.update(steady_start=now, phase="steady")
                if cfg.kill_after is not None:
                    kill_at = now + cfg.kill_after
            if now >= kill_at and kill_task is None:
                kill_task = asyncio.create_task(self._kill(drivers))
            rate = (self._sum("succeeded") - last[1]) / max(1e-3, now - last[0])
            # the harness's own CPU (workers and this process): on a small machine the bots
            # compete with the nodes for the same cores
            cpu = time.process_time()
            cpu += sum(float(p.get("cpu_s", 0.0)) for p in self.progress.values())
            harness_pct = 100.0 * (cpu - cpu_last[1]) / max(1e-3, now - cpu_last[0])
            cpu_last = (now, cpu)
            last = (now, self._sum("succeeded"))
            nodes = " ".join(
                f"n{i}:{s.cpu_pct[-1]:.0f}%/{s.rss_mb[-1]:.0f}MB" if s.cpu_pct else f"n{i}:-"
                for i, s in enumerate(series)
            )
            line = {
                "t": now - t0,
                "joined": joined,
                "live": self._sum("live"),
                "failed": failed,
                "reconnected": self._sum("reconnected"),
                "join_rate": rate,
                "media": self._sum("media_live"),
                "audio": self._sum("audio_received"),
                "harness_cpu_pct": round(harness_pct, 1),
            }
            self.progress_log.append(line)
            phase = self.meta.get("phase", "")
            self._say(
                f"[{phase:6}] t={line['t']:6.1f}s joined {joined}/{total} live {line['live']}"
                f" errors {failed} reconnected {line['reconnected']} joins/s {rate:6.0f}"
                f" media {line['media']}/{cfg.media_listeners} audio pkts {line['audio']}"
                f" | bots {harness_pct:.0f}% {nodes}"
            )
            if now >= steady_end and (kill_task is None or kill_task.done()):
                break
        if kill_task is not None:
            with contextlib.suppress(Exception):
                await kill_task

    async def _kill(self, drivers: list[RoomDriver]) -> None:
        """node-kill: SIGKILL the last node; check that the room's stage and host survive."""
        assert self.cluster is not None
        victim = len(self.cluster.urls) - 1
        before = [await d.stage_state() for d in drivers]
        killed_at = time.time()
        self.cluster.kill(victim)
        self.meta["kill"] = {"node": victim, "url": self.cluster.urls[victim], "at": killed_at}
        self._say(f"node-kill: SIGKILL node {victim} ({self.cluster.urls[victim]})")
        await asyncio.sleep(10.0)
        after: list[Any] = []
        deadline = killed_at + 30.0
        while True:
            after = [await d.stage_state() for d in drivers]
            if after == before or time.time() > deadline:
                break
            await asyncio.sleep(1.0)
        self.meta["kill"].update(
            state_before=before,
            state_after=after,
            state_unchanged=after == before and all(b is not None for b in before),
            state_checked_s=time.time() - killed_at,
        )


def run_sync(cfg: RunConfig, cluster: Cluster | None = None) -> dict[str, Any]:
    """Run with uvloop; returns the report (already written to cfg.out)."""
    import uvloop

    from loadtest.report import write_report

    report = uvloop.run(Coordinator(cfg, cluster).run())
    write_report(report, cfg.out, quiet=cfg.quiet)
    return report


def check_limits(cfg: RunConfig) -> str | None:
    """An error message if the run cannot fit the fd limit, else None."""
    hard = raise_fd_limit()
    total = cfg.listeners + cfg.media_listeners
    per_worker = math.ceil(total / max(1, cfg.workers))
    # a media listener holds a UDP socket or two besides its WebSocket
    if per_worker * (1 + 2 * cfg.media_listeners / max(1, total)) > hard - FD_MARGIN:
        return f"{per_worker} connections per worker exceed the fd limit {hard}: raise --workers"
    return None


def default_workers(total: int) -> int:
    return max(2, min(os.cpu_count() or 2, 8), math.ceil(total / 15_000))
