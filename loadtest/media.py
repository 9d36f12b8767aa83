"""Media benchmark of the SFU: N non-decoding listeners, S synthetic speakers.

    python -m loadtest.media --listeners 1000 --speakers 1 --duration 10 --json out.json

Processes (all on 127.0.0.1):

* the **server**: a real :class:`signaling.sfu.Sfu` behind a tiny HTTP endpoint
  for offers; its CPU time is read over the measurement window;
* **listener** processes (``--procs``, default one per 1,000 listeners): light
  aiortc client peers (no decoder, no per-packet task: SRTP is unprotected right
  in the socket callback) that count packets and read each packet's send time;
* this process: S speakers sending Opus-like RTP at 50 pps with an RFC 6464
  audio level, the send time (``CLOCK_MONOTONIC`` ns) inside the payload.

Packets are counted when their *send* time falls in the window, so the expected
count is exact: ``listeners x packets sent by heard speakers in the window``.
After the window the server measures the floor: SRTP ``protect`` + one UDP
``sendto`` per packet, in a tight loop, with the SRTP profile its listeners
negotiated, the same ``protect`` as the fan-out and one SRTP session per
listener (``floor_us_per_packet``); ``floor_pylibsrtp_us`` is the earlier floor
(``pylibsrtp.Session.protect``, 64 sessions in turn); ``floor_paced_us`` sends one
round every 20 ms like the fan-out, so that each datagram wakes an idle listener
process up (a cost of loopback that a remote listener would not put on the
server). ``fanout_cpu_us`` is the server thread's CPU inside ``on_rtp`` per
listener packet, ``server_us_per_packet`` all of the server's CPU per listener
packet (ICE consent, RTCP, timers, the speaker's inbound path included).
Everything is bounded in time and stops by itself.

Latency, two ways (all clocks are ``CLOCK_MONOTONIC`` of one machine):

* ``latency_ms_*`` (end to end): speaker send time to the listener process's
  callback. On a small box this includes the listener processes' own queueing:
  one process reads ~1,000 sockets and unprotects every packet, so the last
  listener of a fan-out is read up to one fan-out's worth of *its* CPU later.
* ``server_ms_*`` (added by the server): a side channel in the server process
  stamps each forwarded packet when ``RoomForwarder.on_rtp`` starts and ends. The
  speaker's send time to the start (``ingress_ms_*``: loopback, the server's event
  loop queue, DTLS demux, SRTP unprotect) plus the position of each listener in
  the fan-out, interpolated linearly between start and end (``fanout_ms_*``: the
  whole fan-out of one packet); one sample per listener per packet.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import gc
import json
import math
import multiprocessing
import os
import resource
import socket
import struct
import sys
import time
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from typing import Any

ROOM = "bench"
PPS = 50
PAYLOAD_SIZE = 60  # ~24 kbit/s Opus frames
_PAYLOAD = struct.Struct("!BIq")  # speaker index, speaker seq, send time (monotonic ns)
SETUP_CONCURRENCY = 16


@dataclass(frozen=True)
class Result:
    listeners: int
    speakers: int
    slots: int
    duration: float
    delivered_pps: float
    expected_pps: float
    loss_pct: float
    server_cpu_s: float
    server_us_per_packet: float
    floor_us_per_packet: float
    ratio_to_floor: float
    latency_ms_p50: float
    latency_ms_p99: float
    server_ms_p50: float
    server_ms_p99: float
    ingress_ms_p50: float
    ingress_ms_p99: float
    fanout_ms_p50: float
    fanout_ms_p99: float
    floor_pylibsrtp_us: float
    floor_paced_us: float
    fanout_cpu_us: float
    listeners_connected: int
    setup_s: float
    server_packets_sent: int
    srtp_profile: str
    listener_procs_cpu_s: float
    speakers_proc_cpu_s: float


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# --- server process ------------------------------------------------------------------


def _server_main(conn: Connection, slots: int, use_uvloop: bool) -> None:
    _raise_fd_limit()
    if use_uvloop:
        import uvloop

        uvloop.run(_server(conn, slots))
    else:
        asyncio.run(_server(conn, slots))


async def _server(conn: Connection, slots: int) -> None:
    from aiohttp import web

    from signaling.sfu import Sfu, SfuSettings
    from signaling.sfu import aiortc_internals as internals

    sfu = Sfu(
        SfuSettings(
            audio_slots=slots,
            ice_gather_addresses=("127.0.0.1",),
            connect_timeout=60.0,
            silence_timeout=120.0,
        )
    )
    done = asyncio.Event()
    window: dict[str, float] = {}
    # Side channel: (speaker send ns, on_rtp start ns, end ns, listener packets sent,
    # thread CPU ns of the call).
    trace = array.array("q")
    traced: set[int] = set()

    def trace_forwarder() -> None:
        forwarder = sfu.forwarder(ROOM)
        if forwarder is None or id(forwarder) in traced:
            return
        traced.add(id(forwarder))
        on_rtp = forwarder.on_rtp
        stats = forwarder.stats
        clock = time.monotonic_ns
        cpu_clock = time.thread_time_ns
        unpack = _PAYLOAD.unpack_from

        def traced_on_rtp(
            user: str,
            seq: int,
            ts: int,
            payload: bytes,
            level: int | None,
            now: float,
            stream: int = 0,
        ) -> None:
            before = stats.packets_sent
            cpu = cpu_clock()
            start = clock()
            on_rtp(user, seq, ts, payload, level, now, stream)
            end = clock()
            cpu = cpu_clock() - cpu
            sent_n = stats.packets_sent - before
            if sent_n and len(payload) >= _PAYLOAD.size:
                trace.extend((unpack(payload, 0)[2], start, end, sent_n, cpu))

        forwarder.on_rtp = traced_on_rtp  # type: ignore[method-assign,assignment]

    async def offer(request: web.Request) -> web.Response:
        body = await request.json()
        session = sfu.session(ROOM, body["user"]) or await sfu.open(ROOM, body["user"])
        answer = await session.apply_offer(body["sdp"])
        trace_forwarder()
        return web.json_response({"sdp": answer})

    async def audible(request: web.Request) -> web.Response:
        body = await request.json()
        sfu.set_audible(ROOM, body["user"], bool(body["audible"]))
        return web.json_response({})

    async def status(request: web.Request) -> web.Response:
        forwarder = sfu.forwarder(ROOM)
        connected = 0 if forwarder is None else forwarder.outlet_count
        return web.json_response({"connected": connected})

    def sent() -> int:
        forwarder = sfu.forwarder(ROOM)
        return 0 if forwarder is None else forwarder.stats.packets_sent

    async def start(request: web.Request) -> web.Response:
        del trace[:]
        window["cpu"] = time.process_time()
        window["sent"] = sent()
        return web.json_response({})

    async def stop(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "cpu": time.process_time() - window["cpu"],
                "sent": sent() - window["sent"],
                "trace": trace.tolist(),
            }
        )

    async def floor(request: web.Request) -> web.Response:
        body = await request.json()
        profile = None
        targets: list[tuple[Any, tuple[str, int]]] = []
        for user in body["users"]:
            session = sfu.session(ROOM, user)
            if session is None:
                continue
            profile = profile or internals.srtp_profile(session.peer_connection)
            path = internals.fast_path(session.peer_connection)
            if path is not None:
                targets.append((path.sendto, path.addr))
        packets = int(body["packets"])
        us, name = _floor(profile, packets, targets, lean=True)
        plain_us, _ = _floor(profile, packets, targets, lean=False)
        paced_us, _ = _floor(profile, packets, targets, lean=True, paced=True)
        return web.json_response(
            {"us": us, "plain_us": plain_us, "paced_us": paced_us, "profile": name}
        )

    async def shutdown(request: web.Request) -> web.Response:
        done.set()
        return web.json_response({})

    app = web.Application(client_max_size=1 << 20)
    app.add_routes(
        [
            web.post("/offer", offer),
            web.post("/audible", audible),
            web.get("/status", status),
            web.post("/start", start),
            web.post("/stop", stop),
            web.post("/floor", floor),
            web.post("/shutdown", shutdown),
        ]
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    port = int(runner.addresses[0][1])
    conn.send(port)
    try:
        await asyncio.wait_for(done.wait(), timeout=3600)
    finally:
        await sfu.close()
        await runner.cleanup()


def _floor(
    profile: int | None,
    packets: int,
    targets: list[tuple[Any, tuple[str, int]]],
    lean: bool,
    paced: bool = False,
) -> tuple[float, str]:
    """CPU us per packet of SRTP protect + one sendto in a tight loop.

    ``paced``: one round to every destination every 1/PPS s (at most 50 rounds),
    like the real fan-out, so that the listeners are idle, not busy, when a round
    starts (each datagram then wakes its receiver up, as in the fan-out).

    ``lean``: the fan-out's own protect (:func:`aiortc_internals.fast_protect`) and
    one SRTP session per destination, like the fan-out (1,000 sessions cost ~1.5 us
    a packet more than 64 in turn: their state does not stay in cache); otherwise
    the earlier floor, ``pylibsrtp.Session.protect`` with 64 sessions in turn.

    Same SRTP profile as the listeners, and the same
    sockets and destinations as the real fan-out (the listeners' selected pairs,
    whose processes are polling them), so that the kernel work per datagram is
    the same. The listeners drop these packets (authentication fails).
    """
    import pylibsrtp

    from signaling.sfu import aiortc_internals as internals
    from signaling.sfu.rtp import pack_header

    names = {
        pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80: "AES128_CM_SHA1_80",
        pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM: "AEAD_AES_128_GCM",
        pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_256_GCM: "AEAD_AES_256_GCM",
    }
    if profile is None:
        profile = pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80
    key_len = {
        pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80: 30,
        pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM: 28,
        pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_256_GCM: 44,
    }[profile]
    sessions = []
    for _ in range(max(64, len(targets)) if lean else 64):
        policy = pylibsrtp.Policy(
            key=os.urandom(key_len),
            ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
            srtp_profile=profile,
        )
        policy.allow_repeat_tx = True
        policy.window_size = 1024
        sessions.append(pylibsrtp.Session(policy))
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.setblocking(False)
    if not targets:
        targets = [(sender.sendto, sink.getsockname())]
    payload = os.urandom(PAYLOAD_SIZE)
    protects = [internals.fast_protect(s) if lean else s.protect for s in sessions]
    # One (protect, sendto, addr) per destination, like the fan-out's outlets.
    plan = [(protects[i % len(protects)], fn, addr) for i, (fn, addr) in enumerate(targets)]
    rounds = max(1, packets // len(plan))
    if paced:
        rounds = min(rounds, PPS)
    cpu = 0.0
    for seq in range(rounds):
        if paced:
            time.sleep(1 / PPS)
        start = time.process_time()
        data = (
            pack_header(
                marker=False, payload_type=96, sequence_number=seq, timestamp=seq * 960, ssrc=1
            )
            + payload
        )
        for protect, sendto, addr in plan:
            # try/except like the fan-out: contextlib.suppress costs ~0.3 us a packet
            try:  # noqa: SIM105
                sendto(protect(data), addr)
            except OSError:
                pass
        cpu += time.process_time() - start
    sink.close()
    sender.close()
    return cpu / (rounds * len(plan)) * 1e6, names.get(profile, str(profile))


# --- listener processes --------------------------------------------------------------


def _listener_main(conn: Connection, port: int, users: list[str], slots: int) -> None:
    import uvloop

    _raise_fd_limit()
    # uvloop: the per-datagram cost of the event loop is what limits a listener process.
    uvloop.run(_listeners(conn, port, users, slots))


async def _post(session: Any, port: int, path: str, body: dict[str, Any]) -> dict[str, Any]:
    async with session.post(f"http://127.0.0.1:{port}{path}", json=body) as response:
        response.raise_for_status()
        result: dict[str, Any] = await response.json()
        return result


async def _listeners(conn: Connection, port: int, users: list[str], slots: int) -> None:
    import aiohttp

    from signaling.sfu import aiortc_internals as internals
    from signaling.sfu.client import AudioPeer

    window = [0, 0]  # send-time bounds, ns
    cpu_at = time.process_time()
    counted = [0]
    latencies = array.array("q")
    unpack = _PAYLOAD.unpack_from
    monotonic_ns = time.monotonic_ns

    def on_rtp(data: bytes) -> None:
        # The SFU sends 12-byte headers (no CSRC, no extension).
        _, _, sent_ns = unpack(data, 12)
        if window[0] <= sent_ns < window[1]:
            counted[0] += 1
            latencies.append(monotonic_ns() - sent_ns)

    peers: list[AudioPeer] = []
    uninstalls = []
    limit = asyncio.Semaphore(SETUP_CONCURRENCY)

    async def connect(http: Any, user: str) -> None:
        async with limit:
            peer = AudioPeer(slots=slots, keep_packets=False)
            peers.append(peer)
            answer = await _post(http, port, "/offer", {"user": user, "sdp": await peer.offer()})
            await peer.accept(answer["sdp"])
            await peer.wait_connected(60.0)
            uninstall = internals.install_fast_receive(peer.pc, on_rtp)
            if uninstall is None:
                raise ConnectionError("no fast receive path")
            uninstalls.append(uninstall)

    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=SETUP_CONCURRENCY)
    ) as http:
        results = await asyncio.gather(
            *(connect(http, user) for user in users), return_exceptions=True
        )
    failures = sum(1 for r in results if isinstance(r, BaseException))
    # The listeners are the measuring instrument: keep GC pauses of their large,
    # long-lived heap out of the latency figures.
    gc.collect()
    gc.freeze()
    conn.send(("ready", len(users) - failures))
    try:
        while True:
            message = await _recv(conn, 3600)
            if message[0] == "window":
                window[0], window[1] = message[1], message[2]
                counted[0] = 0
                del latencies[:]
                cpu_at = time.process_time()
            elif message[0] == "report":
                cpu = time.process_time() - cpu_at
                conn.send(("report", counted[0], latencies.tobytes(), cpu))
            else:
                break
    finally:
        for peer in peers:
            with contextlib.suppress(Exception):
                await peer.close()


async def _recv(conn: Connection, limit: float) -> Any:
    deadline = time.monotonic() + limit
    while not conn.poll():
        if time.monotonic() > deadline:
            raise TimeoutError("no message from the coordinator")
        await asyncio.sleep(0.02)
    return conn.recv()


# --- coordinator ---------------------------------------------------------------------


async def _run(args: argparse.Namespace) -> Result:
    import aiohttp

    from signaling.sfu.client import AudioPeer

    ctx = multiprocessing.get_context("spawn")
    server_conn, server_child = ctx.Pipe()
    server = ctx.Process(
        target=_server_main, args=(server_child, args.slots, args.uvloop), daemon=True
    )
    server.start()
    procs: list[Any] = []
    pipes: list[Connection] = []
    speakers: list[AudioPeer] = []
    try:
        port = await _recv(server_conn, 60)
        started = time.monotonic()
        users = [f"listener{i}" for i in range(args.listeners)]
        nprocs = args.procs or max(1, math.ceil(args.listeners / 1000))
        for i in range(nprocs):
            parent, child = ctx.Pipe()
            proc = ctx.Process(
                target=_listener_main,
                args=(child, port, users[i::nprocs], args.slots),
                daemon=True,
            )
            proc.start()
            procs.append(proc)
            pipes.append(parent)

        async with aiohttp.ClientSession() as http:
            for i in range(args.speakers):
                peer = AudioPeer(slots=args.slots, keep_packets=False)
                speakers.append(peer)
                user = f"speaker{i}"
                answer = await _post(
                    http, port, "/offer", {"user": user, "sdp": await peer.offer()}
                )
                await peer.accept(answer["sdp"])
                await peer.wait_connected(60.0)
                answer = await _post(
                    http, port, "/offer", {"user": user, "sdp": await peer.offer_send()}
                )
                await peer.accept(answer["sdp"])
                await _post(http, port, "/audible", {"user": user, "audible": True})

            connected = 0
            for pipe in pipes:
                message = await _recv(pipe, args.setup_timeout)
                connected += message[1]
            setup_s = time.monotonic() - started
            print(f"setup: {connected}/{args.listeners} listeners in {setup_s:.1f} s", flush=True)

            sent_in_window = [0]
            main_cpu = [0.0]
            bounds = [0, 0]
            stop = asyncio.Event()

            async def speak() -> None:
                pad = os.urandom(PAYLOAD_SIZE - _PAYLOAD.size)
                period = 1 / PPS
                next_at = time.monotonic()
                seq = 0
                while not stop.is_set():
                    for index, peer in enumerate(speakers):
                        now_ns = time.monotonic_ns()
                        payload = _PAYLOAD.pack(index, seq, now_ns) + pad
                        peer.send_audio(payload, 20 + index)
                        if bounds[0] <= now_ns < bounds[1] and index < args.slots:
                            sent_in_window[0] += 1
                    seq += 1
                    next_at += period
                    await asyncio.sleep(max(0.0, next_at - time.monotonic()))

            talker = asyncio.create_task(speak())
            await asyncio.sleep(args.warmup)
            t0 = time.monotonic_ns() + 200_000_000
            t1 = t0 + int(args.duration * 1e9)
            bounds[0], bounds[1] = t0, t1
            for pipe in pipes:
                pipe.send(("window", t0, t1))
            await asyncio.sleep(max(0.0, (t0 - time.monotonic_ns()) / 1e9))
            await _post(http, port, "/start", {})
            main_cpu[0] = time.process_time()
            await asyncio.sleep(max(0.0, (t1 - time.monotonic_ns()) / 1e9))
            cpu = await _post(http, port, "/stop", {})
            main_cpu[0] = time.process_time() - main_cpu[0]
            stop.set()
            await talker
            await asyncio.sleep(0.5)  # the last packets in flight
            delivered = 0
            listeners_cpu = 0.0
            latencies = array.array("q")
            for pipe in pipes:
                pipe.send(("report",))
                _, count, raw, listener_cpu = await _recv(pipe, 60)
                delivered += count
                listeners_cpu += listener_cpu
                chunk = array.array("q")
                chunk.frombytes(raw)
                latencies.extend(chunk)
            floor = await _post(
                http, port, "/floor", {"users": users, "packets": args.floor_packets}
            )
            for pipe in pipes:
                pipe.send(("close",))
            await _post(http, port, "/shutdown", {})

        window_s = args.duration
        expected = connected * sent_in_window[0]
        ordered = sorted(latencies)

        def quantile(q: float) -> float:
            if not ordered:
                return float("nan")
            return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6

        server_us = cpu["cpu"] / delivered * 1e6 if delivered else float("nan")
        ingress: list[float] = []
        fanout: list[float] = []
        through: list[float] = []
        fanout_cpu_ns = fanout_n = 0
        raw_trace = cpu["trace"]
        for i in range(0, len(raw_trace), 5):
            sent_ns, start, end, n, call_cpu = raw_trace[i : i + 5]
            if not t0 <= sent_ns < t1:
                continue
            fanout_cpu_ns += call_cpu
            fanout_n += n
            ingress.append(start - sent_ns)
            fanout.append(end - start)
            step = (end - start) / n
            base = start - sent_ns + step / 2
            through.extend(base + k * step for k in range(n))

        def q(values: list[float], p: float) -> float:
            if not values:
                return float("nan")
            values.sort()
            return values[min(len(values) - 1, int(p * len(values)))] / 1e6

        return Result(
            listeners=connected,
            speakers=args.speakers,
            slots=args.slots,
            duration=window_s,
            delivered_pps=delivered / window_s,
            expected_pps=expected / window_s,
            loss_pct=100.0 * (1 - delivered / expected) if expected else float("nan"),
            server_cpu_s=cpu["cpu"],
            server_us_per_packet=server_us,
            floor_us_per_packet=floor["us"],
            ratio_to_floor=server_us / floor["us"],
            latency_ms_p50=quantile(0.5),
            latency_ms_p99=quantile(0.99),
            server_ms_p50=q(through, 0.5),
            server_ms_p99=q(through, 0.99),
            ingress_ms_p50=q(ingress, 0.5),
            ingress_ms_p99=q(ingress, 0.99),
            fanout_ms_p50=q(fanout, 0.5),
            fanout_ms_p99=q(fanout, 0.99),
            floor_pylibsrtp_us=floor["plain_us"],
            floor_paced_us=floor["paced_us"],
            fanout_cpu_us=fanout_cpu_ns / fanout_n / 1e3 if fanout_n else float("nan"),
            listeners_connected=connected,
            setup_s=setup_s,
            server_packets_sent=int(cpu["sent"]),
            srtp_profile=floor["profile"],
            listener_procs_cpu_s=listeners_cpu,
            speakers_proc_cpu_s=main_cpu[0],
        )
    finally:
        for peer in speakers:
            with contextlib.suppress(Exception):
                await peer.close()
        for proc in [*procs, server]:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.media", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--listeners", type=int, default=200)
    parser.add_argument("--speakers", type=int, default=1)
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    parser.add_argument("--json", dest="json_path", help="write the result here")
    parser.add_argument("--slots", type=int, default=3)
    parser.add_argument("--procs", type=int, default=0, help="listener processes (0: auto)")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--uvloop", action="store_true", help="run the server on uvloop")
    parser.add_argument("--setup-timeout", type=float, default=600.0)
    parser.add_argument("--floor-packets", type=int, default=200_000)
    args = parser.parse_args(argv)
    if args.listeners < 1 or args.speakers < 1 or args.duration <= 0:
        parser.error("need at least one listener, one speaker and a positive duration")
    per_proc = math.ceil(args.listeners / (args.procs or max(1, math.ceil(args.listeners / 1000))))
    if per_proc > 19_000:
        parser.error("too many listeners per process for 20,000 fds: raise --procs")
    _raise_fd_limit()
    result = asyncio.run(
        asyncio.wait_for(_run(args), timeout=args.setup_timeout + args.duration + 300)
    )
    summary = asdict(result)
    width = max(len(k) for k in summary)
    for key, value in summary.items():
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        print(f"{key:<{width}}  {shown}")
    if args.json_path:
        with open(args.json_path, "w") as fh:
            json.dump(summary, fh, indent=2)
            fh.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
