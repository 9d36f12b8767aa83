"""The bots that act, in the coordinator process: per room a host, speakers and
hand-raisers.

The host issues PUBLIC commands at known times (its own mute/unmute as a probe, and
in stage-churn the invitations and moves of speakers and hands); each such command is
registered as a :class:`Probe` just before it is sent, and the host, which sees every
PUBLIC event, maps the event that matches it to its ``version``. Listeners record
when each version reached them; the difference is the event delivery latency.

Speakers send synthetic Opus-like RTP at 50 pps with an RFC 6464 level and the send
time in the payload; packets sent while a speaker is settled on stage are flagged
COUNTED, and their send times are kept so that every media listener's expected count
is exact.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from loadtest.bot import Bot, JoinStats, Message
from loadtest.common import COUNTED, MAGIC, MEDIA_SETTLE, PAYLOAD, PAYLOAD_SIZE, PPS


@dataclass
class Probe:
    kind: str  # event type expected
    user_id: str
    fields: dict[str, Any]
    sent: float  # time.time() just before the command was sent
    command: str


@dataclass
class RoomLog:
    """What the driver of one room knows: probe versions and counted audio."""

    index: int
    room_id: str
    pending: list[Probe] = field(default_factory=list)
    probes: dict[int, tuple[str, float]] = field(default_factory=dict)  # version -> (kind, sent)
    counted_ns: list[array.array[int]] = field(default_factory=list)  # per speaker
    commands: int = 0
    command_errors: dict[str, int] = field(default_factory=dict)
    unmatched: int = 0
    counting: bool = True  # speakers flag packets COUNTED only while this is set

    def error(self, code: str) -> None:
        self.command_errors[code] = self.command_errors.get(code, 0) + 1


class Actor(Bot):
    """A driver bot: knows its role and mute state from what it is told."""

    def __init__(self, log: RoomLog, **kw: Any) -> None:
        super().__init__(**kw)
        self.log = log
        self.role = "listener"
        self.muted = True
        self.in_queue = False
        self.invited = False
        self.ready = asyncio.Event()

    def on_joined(self, msg: Message, again: bool) -> None:
        you = msg["snapshot"].get("you") or {}
        self.role = str(you.get("role", "listener"))
        self.muted = bool(you.get("muted", True))
        self.in_queue = you.get("hand_position") is not None
        self.invited = bool(you.get("invited", False))
        self.ready.set()

    def on_dropped(self, now: float) -> None:
        self.ready.clear()

    def on_message(self, msg: Message, now: float) -> None:
        kind = msg.get("type")
        if kind == "snapshot":
            you = msg["snapshot"].get("you") or {}
            self.role = str(you.get("role", self.role))
            self.muted = bool(you.get("muted", self.muted))
        elif msg.get("user_id") == self.user_id:
            if kind == "role_changed":
                self.role = str(msg["role"])
                self.invited = False
            elif kind == "mute_changed":
                self.muted = bool(msg["muted"])
            elif kind == "hand_raised":
                self.in_queue = True
            elif kind == "hand_lowered":
                self.in_queue = False
            elif kind == "speaker_invited":
                self.invited = True
                self.in_queue = False
            elif kind == "invite_withdrawn":
                self.invited = False

    async def command(
        self, kind: str, probe: tuple[str, str, dict[str, Any]] | None = None, **fields: Any
    ) -> bool:
        """Send a command (registering the PUBLIC event it should cause); True on ack."""
        if probe is not None:
            self.log.pending.append(Probe(probe[0], probe[1], probe[2], time.time(), kind))
        self.log.commands += 1
        try:
            reply = await self.call(kind, **fields)
        except (ConnectionError, TimeoutError, OSError) as exc:
            self.log.error(type(exc).__name__)
            return False
        if reply.get("type") != "ack":
            self.log.error(str(reply.get("code")))
            return False
        return True


class Host(Actor):
    """Sees every PUBLIC event: resolves probes to versions."""

    def on_message(self, msg: Message, now: float) -> None:
        super().on_message(msg, now)
        version = msg.get("version")
        kind = msg.get("type")
        if not isinstance(version, int) or kind == "room_stats" or "queue_version" in msg:
            return
        for i, probe in enumerate(self.log.pending):
            if (
                probe.kind == kind
                and probe.user_id == msg.get("user_id")
                and all(msg.get(k) == v for k, v in probe.fields.items())
            ):
                del self.log.pending[i]
                self.log.probes[version] = (f"{probe.command}:{kind}", probe.sent)
                return
        self.log.unmatched += 1


class Speaker(Actor):
    """On stage: a peer connection with a send track, talking at 50 pps."""

    def __init__(self, speaker_index: int, counting: bool, **kw: Any) -> None:
        super().__init__(**kw)
        self.speaker_index = speaker_index
        self.may_count = counting  # one of the K loudest, so every listener hears it
        self.peer: Any = None
        self.sending = False
        self.audible_since = 0.0
        self.counted = array.array("q")
        self.sent = 0
        self.media_task: asyncio.Task[None] | None = None
        self.media_failures = 0

    def on_joined(self, msg: Message, again: bool) -> None:
        super().on_joined(msg, again)
        self.sending = False
        self.media_task = asyncio.create_task(self.setup_media(int(msg["media"]["audio_slots"])))

    def on_dropped(self, now: float) -> None:
        super().on_dropped(now)
        self.sending = False
        peer, self.peer = self.peer, None
        if peer is not None:
            asyncio.create_task(peer.close())  # noqa: RUF006

    def on_message(self, msg: Message, now: float) -> None:
        was = self.role
        super().on_message(msg, now)
        if was != self.role and self.role == "listener":
            self.audible_since = 0.0

    async def setup_media(self, slots: int) -> None:
        from signaling.sfu.client import AudioPeer

        peer = AudioPeer(slots=slots, gather_addresses=("127.0.0.1",), keep_packets=False)
        try:
            answer = await self.call("rtc_offer", limit=30.0, sdp=await peer.offer())
            await peer.accept(str(answer["sdp"]))
            await peer.wait_connected(30.0)
            answer = await self.call("rtc_offer", limit=30.0, sdp=await peer.offer_send())
            await peer.accept(str(answer["sdp"]))
        except (ConnectionError, TimeoutError, OSError, KeyError, ValueError):
            self.media_failures += 1
            with contextlib.suppress(Exception):
                await peer.close()
            return
        self.peer = peer
        self.sending = True
        if self.role != "listener" and self.muted:
            await self.command("unmute", ("mute_changed", self.user_id, {"muted": False}))
        if self.role != "listener":
            self.audible_since = time.time()

    def tick(self, seq: int, pad: bytes) -> None:
        """Send one packet (called 50 times a second)."""
        peer = self.peer
        if peer is None or not self.sending:
            return
        now = time.time()
        audible = self.role != "listener" and not self.muted and self.audible_since > 0
        counted = (
            self.may_count
            and audible
            and now >= self.audible_since + MEDIA_SETTLE
            and self.log.counting
        )
        now_ns = time.time_ns()
        payload = (
            PAYLOAD.pack(MAGIC, COUNTED if counted else 0, self.speaker_index, seq, now_ns) + pad
        )
        try:
            peer.send_audio(payload, 20 + self.speaker_index)
        except (ConnectionError, OSError):
            return
        self.sent += 1
        if counted:
            self.counted.append(now_ns)

    async def go_on_stage(self, host: Host) -> bool:
        """Invited by the host, accept, unmute: audible."""
        if not await host.command("invite", user_id=self.user_id):
            return False
        if not await self.command(
            "accept_invite", ("role_changed", self.user_id, {"role": "speaker"})
        ):
            return False
        self.role = "speaker"
        if self.peer is None and self.media_task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self.media_task), 30.0)
        if self.muted and await self.command(
            "unmute", ("mute_changed", self.user_id, {"muted": False})
        ):
            self.muted = False
        self.audible_since = time.time()
        return True

    async def leave_stage(self, host: Host) -> bool:
        """Stop counting, then the host moves us back to the audience."""
        self.audible_since = 0.0
        await asyncio.sleep(0.2)  # counted packets in flight arrive before the move
        ok = await host.command(
            "move_to_audience",
            ("role_changed", self.user_id, {"role": "listener"}),
            user_id=self.user_id,
        )
        if ok:
            self.role = "listener"
        return ok


class HandRaiser(Actor):
    """Raises and lowers a hand; accepts an invitation."""

    def on_message(self, msg: Message, now: float) -> None:
        super().on_message(msg, now)
        if msg.get("type") == "speaker_invited" and msg.get("user_id") == self.user_id:
            asyncio.create_task(self._accept())  # noqa: RUF006

    async def _accept(self) -> None:
        await asyncio.sleep(random.uniform(0.05, 0.3))
        if await self.command("accept_invite", ("role_changed", self.user_id, {"role": "speaker"})):
            self.role = "speaker"

    async def loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), random.uniform(1.0, 4.0))
            if stop.is_set() or not self.ready.is_set():
                continue
            if self.role == "listener" and not self.in_queue and not self.invited:
                if await self.command("raise_hand"):
                    self.in_queue = True
            elif self.in_queue and await self.command("lower_hand"):
                self.in_queue = False


@dataclass
class DriverConfig:
    urls: tuple[str, ...]
    speakers: int
    hand_raisers: int
    probe_interval: float
    churn: bool
    churn_interval: float
    audio_slots: int = 3


class RoomDriver:
    """The host, speakers and hand-raisers of one room."""

    def __init__(
        self,
        log: RoomLog,
        cfg: DriverConfig,
        host_token: str,
        tokens: Callable[[str], str | None],
        session: Callable[[], aiohttp.ClientSession],
        stats: JoinStats,
        stop: asyncio.Event,
    ) -> None:
        self.log = log
        self.cfg = cfg
        self.stop = stop  # ends the bots
        self.acting = asyncio.Event()  # set: stop probing and churning
        n = len(cfg.urls)
        common = {"room_id": log.room_id, "urls": cfg.urls, "session": session, "stats": stats}
        self.host = Host(log, name="host", url_index=0, token=host_token, stop=stop, **common)
        self.speakers = [
            Speaker(
                i,
                i < cfg.audio_slots,
                log=log,
                name=f"speaker-{i}",
                url_index=(i + 1) % n,
                token=tokens(f"lt-r{log.index}-speaker-{i}"),
                stop=stop,
                **common,
            )
            for i in range(cfg.speakers)
        ]
        self.raisers = [
            HandRaiser(
                log,
                name=f"hand-{i}",
                url_index=(i + 1) % n,
                token=tokens(f"lt-r{log.index}-hand-{i}"),
                stop=stop,
                **common,
            )
            for i in range(cfg.hand_raisers)
        ]
        self.tasks: list[asyncio.Task[None]] = []
        self.stage_before: Any = None

    @property
    def bots(self) -> list[Actor]:
        return [self.host, *self.speakers, *self.raisers]

    async def start(self) -> None:
        """Connect everyone; put the speakers on stage."""
        self.tasks = [asyncio.create_task(b.run()) for b in self.bots]
        for bot in self.bots:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(bot.ready.wait(), 30.0)
        if not self.host.ready.is_set():
            raise ConnectionError("the host could not join")
        for speaker in self.speakers:
            if speaker.ready.is_set():
                await speaker.go_on_stage(self.host)

    async def run(self) -> None:
        """Probes, talking, hands and churn until :attr:`acting` is set."""
        loops = [self._probe(), self._talk(), *(r.loop(self.acting) for r in self.raisers)]
        if self.cfg.churn:
            loops.append(self._churn())
        await asyncio.gather(*loops)

    async def _probe(self) -> None:
        host = self.host
        while not self.acting.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.acting.wait(), self.cfg.probe_interval)
            if self.acting.is_set() or not host.ready.is_set():
                continue
            want = not host.muted
            kind = "mute" if want else "unmute"
            if await host.command(kind, ("mute_changed", host.user_id, {"muted": want})):
                host.muted = want

    async def _talk(self) -> None:
        pad = os.urandom(PAYLOAD_SIZE - PAYLOAD.size)
        period = 1.0 / PPS
        next_at = time.monotonic()
        seq = 0
        while not self.acting.is_set():
            for speaker in self.speakers:
                speaker.tick(seq, pad)
            seq += 1
            next_at += period
            delay = next_at - time.monotonic()
            if delay < -0.5:  # fell far behind: do not burst to catch up
                next_at = time.monotonic()
            await asyncio.sleep(max(0.0, delay))

    async def _churn(self) -> None:
        """Speakers come and go; hands in the queue are invited and moved back."""
        host = self.host
        on_stage_raisers: list[HandRaiser] = []
        turn = 0
        while not self.acting.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.acting.wait(), self.cfg.churn_interval)
            if self.acting.is_set() or not host.ready.is_set():
                continue
            turn += 1
            if turn % 2 and self.speakers:
                up = [s for s in self.speakers if s.role != "listener"]
                down = [s for s in self.speakers if s.role == "listener" and s.ready.is_set()]
                if down:
                    await down[0].go_on_stage(host)
                elif up:
                    await random.choice(up).leave_stage(host)
            else:
                if on_stage_raisers:
                    raiser = on_stage_raisers.pop(0)
                    await host.command(
                        "move_to_audience",
                        ("role_changed", raiser.user_id, {"role": "listener"}),
                        user_id=raiser.user_id,
                    )
                queued = [r for r in self.raisers if r.in_queue and r.role == "listener"]
                if queued:
                    raiser = random.choice(queued)
                    if await host.command("invite", user_id=raiser.user_id):
                        on_stage_raisers.append(raiser)

    async def stage_state(self) -> tuple[str, tuple[tuple[str, str], ...]] | None:
        """(host, stage as (user, role)) from a fresh snapshot, or None."""
        host = self.host
        if not host.ready.is_set():
            return None
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        original = host.on_message

        def catch(msg: Message, now: float) -> None:
            original(msg, now)
            if msg.get("type") == "snapshot" and not future.done():
                future.set_result(msg)

        host.on_message = catch  # type: ignore[method-assign]
        try:
            await host.send({"type": "resync"})
            snap = (await asyncio.wait_for(future, 10.0))["snapshot"]
        except (ConnectionError, TimeoutError, OSError):
            return None
        finally:
            host.on_message = original  # type: ignore[method-assign]
        stage = tuple(sorted((str(m["user_id"]), str(m["role"])) for m in snap["stage"]))
        hosts = [u for u, r in stage if r == "host"]
        return (hosts[0] if hosts else "", stage)

    async def finish(self) -> None:
        """Stop acting, keep the counted audio, close everyone."""
        self.acting.set()
        self.log.counted_ns = [s.counted for s in self.speakers]
        self.stop.set()
        await asyncio.gather(
            *(asyncio.wait_for(b.close(), 5.0) for b in self.bots), return_exceptions=True
        )
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=10.0)
        for task in self.tasks:
            task.cancel()
        for speaker in self.speakers:
            if speaker.peer is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(speaker.peer.close(), 5.0)
