"""One room's forwarding state: audible speakers, K slots, listener outlets, fan-out.

No asyncio here: the session layer feeds packets and ticks; everything in the hot
path is synchronous and non-blocking (``sendto`` on non-blocking UDP sockets;
a full socket buffer drops the packet, as UDP would).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from aiortc.rtp import (
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpSdesPacket,
    RtcpSenderInfo,
    RtcpSourceInfo,
    RtcpSrPacket,
    clamp_packets_lost,
)

from .munger import SlotMunger
from .rtp import seq_diff
from .slots import LevelMeter, SlotPolicy, select_slots

# Periods (tick_interval) without a packet before a speaker counts as silent: at 30,000
# listeners one fan-out holds a node's loop ~0.15 s, which left a 0.1 s period without
# packets, flipped the active speakers and sent the next fan-out (one frame per listener).
SILENCE_AFTER = 3

_HEADER: Final = struct.Struct("!BBHLL")
_pack_header: Final = _HEADER.pack

# One listener's send path, unpacked in the fan-out loop: (protect, sendto, addr, outlet).
_Entry = tuple[
    Callable[[bytes], bytes], Callable[[bytes, tuple[str, int]], Any], tuple[str, int], "Outlet"
]


@dataclass(slots=True, eq=False)
class Outlet:
    """A connected listener: where and how to send it slot packets."""

    user_id: str
    payload_type: int
    protect: Callable[[bytes], bytes]
    protect_rtcp: Callable[[bytes], bytes]
    sendto: Callable[[bytes, tuple[str, int]], Any]
    addr: tuple[str, int]
    send_errors: int = 0


@dataclass(slots=True)
class _Slot:
    ssrc: int
    munger: SlotMunger
    holder: str | None = None
    held_since: float = 0.0


@dataclass(slots=True)
class ForwarderStats:
    """Counters since the forwarder was created."""

    packets_in: int = 0
    packets_dropped_inaudible: int = 0
    packets_dropped_no_slot: int = 0
    packets_forwarded: int = 0  # slot packets (one per speaker packet heard)
    packets_sent: int = 0  # listener packets (one per listener per slot packet)
    send_errors: int = 0
    slot_switches: int = 0


def slot_ssrcs(room_id: str, count: int) -> tuple[int, ...]:
    """Deterministic, distinct, non-zero SSRCs of a room's slots (same on every node)."""
    out: list[int] = []
    counter = 0
    while len(out) < count:
        digest = hashlib.sha256(f"{room_id}\x00{counter}".encode()).digest()
        counter += 1
        value = int.from_bytes(digest[:4], "big")
        if value and value not in out:
            out.append(value)
    return tuple(out)


def _initial(room_id: str, index: int) -> tuple[int, int]:
    digest = hashlib.sha256(f"{room_id}\x00seq\x00{index}".encode()).digest()
    # Lower half of the sequence space, like aiortc, to keep SRTP rollover far away.
    return int.from_bytes(digest[:2], "big") % 32768, int.from_bytes(digest[2:6], "big")


class RoomForwarder:
    """Forwarding state of one room on this node."""

    def __init__(self, room_id: str, slots: int, policy: SlotPolicy, cname: str) -> None:
        self.room_id = room_id
        self.policy = policy
        self.cname = cname
        self.slots: list[_Slot] = []
        for i, ssrc in enumerate(slot_ssrcs(room_id, slots)):
            seq, ts = _initial(room_id, i)
            self.slots.append(_Slot(ssrc=ssrc, munger=SlotMunger(seq, ts)))
        self.stats = ForwarderStats()
        self._audible: set[str] = set()
        self._present: set[str] = set()  # users with a connected session
        self._meters: dict[str, LevelMeter] = {}
        self._slot_of: dict[str, int] = {}
        self._stream_of: dict[str, int] = {}  # the RTP stream (SSRC) each slotted user sends
        self._outlets: dict[str, Outlet] = {}
        # Outlets grouped by payload type: one serialization per group per packet.
        self._groups: list[tuple[int, list[Outlet]]] = []
        # The same groups as the fan-out loop reads them (see _regroup).
        self._plan: tuple[tuple[int, tuple[_Entry, ...]], ...] = ()

    # --- membership ------------------------------------------------------------

    @property
    def audible(self) -> frozenset[str]:
        return frozenset(self._audible)

    @property
    def outlet_count(self) -> int:
        return len(self._outlets)

    def is_empty(self) -> bool:
        return not (self._audible or self._present or self._outlets)

    def set_present(self, user_id: str, present: bool) -> None:
        """A user's session connected (True) or ended (False)."""
        if present:
            self._present.add(user_id)
        else:
            self._present.discard(user_id)
            self._unslot(user_id)
            self.remove_outlet(user_id)
        self._sync_meter(user_id)

    def heard(self, user_id: str) -> bool:
        """Whether this user's packets are forwarded now (audible and connected)."""
        return user_id in self._meters

    def set_audible(self, user_id: str, audible: bool) -> None:
        if audible:
            self._audible.add(user_id)
        else:
            self._audible.discard(user_id)
            self._unslot(user_id)
        self._sync_meter(user_id)

    def _sync_meter(self, user_id: str) -> None:
        if user_id in self._audible and user_id in self._present:
            self._meters.setdefault(user_id, LevelMeter(hold=SILENCE_AFTER))
        else:
            self._meters.pop(user_id, None)

    def _unslot(self, user_id: str) -> None:
        self._stream_of.pop(user_id, None)
        index = self._slot_of.pop(user_id, None)
        if index is not None:
            slot = self.slots[index]
            slot.holder = None
            slot.munger.switch(None)
            self.stats.slot_switches += 1

    def add_outlet(self, outlet: Outlet) -> None:
        self._outlets[outlet.user_id] = outlet
        self._regroup()

    def remove_outlet(self, user_id: str) -> None:
        if self._outlets.pop(user_id, None) is not None:
            self._regroup()

    def _regroup(self) -> None:
        groups: dict[int, list[Outlet]] = {}
        for outlet in self._outlets.values():
            groups.setdefault(outlet.payload_type, []).append(outlet)
        # Fresh lists: a fan-out in progress keeps iterating its own snapshot.
        self._groups = sorted(groups.items())
        # Per listener, what the hot loop needs, resolved once here rather than per packet.
        self._plan = tuple(
            (pt, tuple((o.protect, o.sendto, o.addr, o) for o in outlets))
            for pt, outlets in self._groups
        )

    def slot_holders(self) -> tuple[str | None, ...]:
        return tuple(slot.holder for slot in self.slots)

    # --- hot path --------------------------------------------------------------

    def on_rtp(
        self,
        user_id: str,
        sequence_number: int,
        timestamp: int,
        payload: bytes,
        level: int | None,
        now: float,
        stream: int = 0,
    ) -> None:
        """One Opus packet from ``user_id``: meter it and, if heard, send it to every listener.

        ``stream`` names the speaker's RTP stream (its SSRC). A new one (the speaker
        reconnected, here or on another node) numbers its packets afresh: the slot
        continues its own stream from there, as at a switch of speaker.
        """
        stats = self.stats
        stats.packets_in += 1
        meter = self._meters.get(user_id)
        if meter is None:  # not audible (or not connected): dropped at once
            stats.packets_dropped_inaudible += 1
            return
        if level is not None:
            meter.add(level)
        index = self._slot_of.get(user_id)
        if index is not None and self._stream_of.get(user_id) != stream:
            self._stream_of[user_id] = stream
            self.slots[index].munger.restart()
        if index is None:
            index = self._free_slot()
            if index is None:
                stats.packets_dropped_no_slot += 1
                return
            self._assign(index, user_id, now)
            self._stream_of[user_id] = stream
        slot = self.slots[index]
        munged = slot.munger.rewrite(user_id, sequence_number, timestamp, now)
        if munged is None:
            return
        slot.munger.packets += 1
        slot.munger.octets += len(payload)
        stats.packets_forwarded += 1
        # Per listener only protect + sendto; everything else is per packet, below.
        excluded = self._outlets.get(user_id)
        second = 0x80 if munged.marker else 0
        seq = munged.sequence_number
        ts = munged.timestamp
        ssrc = slot.ssrc
        attempted = 0
        errors = 0
        for payload_type, plan in self._plan:
            data = _pack_header(0x80, second | payload_type, seq, ts, ssrc) + payload
            attempted += len(plan)
            for protect, sendto, addr, outlet in plan:
                if outlet is excluded:
                    attempted -= 1
                    continue
                try:
                    sendto(protect(data), addr)
                except OSError:  # buffer full, unreachable: drop this one
                    outlet.send_errors += 1
                    errors += 1
        if errors:
            stats.send_errors += errors
        stats.packets_sent += attempted - errors

    def _free_slot(self) -> int | None:
        for i, slot in enumerate(self.slots):
            if slot.holder is None:
                return i
        return None

    def _assign(self, index: int, user_id: str | None, now: float) -> None:
        slot = self.slots[index]
        if slot.holder is not None:
            self._slot_of.pop(slot.holder, None)
            self._stream_of.pop(slot.holder, None)
        slot.holder = user_id
        slot.held_since = now
        slot.munger.switch(user_id)
        if user_id is not None:
            self._slot_of[user_id] = index
        self.stats.slot_switches += 1

    # --- periodic --------------------------------------------------------------

    def tick(self, now: float) -> None:
        """Fold levels and re-select the slots (call every tick_interval)."""
        loudness = {user: meter.tick() for user, meter in self._meters.items()}
        current = self.slot_holders()
        chosen = select_slots(
            current, loudness, [s.held_since for s in self.slots], now, self.policy
        )
        # Release first so that a user moving slot never holds two.
        for i, (old, new) in enumerate(zip(current, chosen, strict=True)):
            if old != new and old is not None:
                self._slot_of.pop(old, None)
                self.slots[i].holder = None
        for i, (old, new) in enumerate(zip(current, chosen, strict=True)):
            if old != new:
                self._assign(i, new, now)

    def speaking(self, level_dbov: int) -> list[tuple[str, float]]:
        """(user, smoothed -dBov) of audible users at least as loud as ``level_dbov``."""
        out = [
            (user, meter.level_dbov)
            for user, meter in self._meters.items()
            if meter.level_dbov <= level_dbov
        ]
        out.sort(key=lambda x: (x[1], x[0]))
        return out

    def sender_report(self, now: float, ntp_timestamp: int) -> bytes | None:
        """Compound RTCP (SR per active slot + SDES CNAME), serialized once for all listeners."""
        reports: list[RtcpSrPacket | RtcpSdesPacket] = []
        chunks: list[RtcpSourceInfo] = []
        for slot in self.slots:
            munger = slot.munger
            if munger.last_sent_at is None:
                continue
            reports.append(
                RtcpSrPacket(
                    ssrc=slot.ssrc,
                    sender_info=RtcpSenderInfo(
                        ntp_timestamp=ntp_timestamp,
                        rtp_timestamp=munger.timestamp_at(now),
                        packet_count=munger.packets & 0xFFFFFFFF,
                        octet_count=munger.octets & 0xFFFFFFFF,
                    ),
                )
            )
            chunks.append(RtcpSourceInfo(ssrc=slot.ssrc, items=[(1, self.cname.encode())]))
        if not reports:
            return None
        reports.append(RtcpSdesPacket(chunks=chunks))
        return b"".join(bytes(p) for p in reports)

    def send_rtcp_to_listeners(self, data: bytes) -> None:
        for _, outlets in self._groups:
            for outlet in outlets:
                try:
                    outlet.sendto(outlet.protect_rtcp(data), outlet.addr)
                except OSError:
                    outlet.send_errors += 1


@dataclass(slots=True)
class InboundStats:
    """RFC 3550 reception statistics of one incoming stream (for receiver reports)."""

    ssrc: int
    received: int = 0
    base_seq: int = -1
    max_seq: int = 0
    cycles: int = 0
    expected_prior: int = 0
    received_prior: int = 0
    lsr: int = 0
    lsr_at: float | None = None

    def add(self, seq: int) -> None:
        self.received += 1
        if self.base_seq < 0:
            self.base_seq = self.max_seq = seq
            return
        if seq_diff(seq, self.max_seq) > 0:
            if seq < self.max_seq:
                self.cycles += 1 << 16
            self.max_seq = seq

    def report(self, now: float) -> RtcpReceiverInfo | None:
        if self.base_seq < 0:
            return None
        expected = self.cycles + self.max_seq - self.base_seq + 1
        expected_interval = expected - self.expected_prior
        received_interval = self.received - self.received_prior
        self.expected_prior = expected
        self.received_prior = self.received
        lost_interval = expected_interval - received_interval
        fraction = 0
        if expected_interval > 0 and lost_interval > 0:
            fraction = min(255, (lost_interval << 8) // expected_interval)
        dlsr = 0
        if self.lsr_at is not None:
            dlsr = min(0xFFFFFFFF, int((now - self.lsr_at) * 65536))
        return RtcpReceiverInfo(
            ssrc=self.ssrc,
            fraction_lost=fraction,
            packets_lost=clamp_packets_lost(expected - self.received),
            highest_sequence=(self.cycles + self.max_seq) & 0xFFFFFFFF,
            jitter=0,
            lsr=self.lsr,
            dlsr=dlsr,
        )


def receiver_report(ssrc: int, reports: list[RtcpReceiverInfo]) -> bytes:
    return bytes(RtcpRrPacket(ssrc=ssrc, reports=reports))
