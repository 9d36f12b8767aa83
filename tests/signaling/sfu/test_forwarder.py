"""The forwarder's fan-out, with recording outlets (no network)."""

from __future__ import annotations

import itertools

from aiortc.rtp import RtcpPacket, RtpPacket

from signaling.sfu.forwarder import Outlet, RoomForwarder, slot_ssrcs
from signaling.sfu.slots import SlotPolicy


class Sink:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        assert addr == ("127.0.0.1", 9)
        self.sent.append(data)


def outlet(user: str, sink: Sink, pt: int = 111) -> Outlet:
    return Outlet(user, pt, lambda b: b, lambda b: b, sink.sendto, ("127.0.0.1", 9))


def room(slots: int = 2) -> RoomForwarder:
    return RoomForwarder("room", slots, SlotPolicy(margin=6, min_hold=0.5), cname="c")


def test_slot_ssrcs_are_deterministic_and_distinct() -> None:
    assert slot_ssrcs("r", 3) == slot_ssrcs("r", 3)
    assert len(set(slot_ssrcs("r", 16))) == 16
    assert slot_ssrcs("r", 3) != slot_ssrcs("s", 3)


def test_forward_once_per_payload_type_and_exclude_self() -> None:
    f = room()
    sinks = {u: Sink() for u in ("a", "b", "c")}
    for u, sink in sinks.items():
        f.set_present(u, True)
        f.add_outlet(outlet(u, sink, pt=96 if u == "c" else 111))
    f.set_audible("a", True)
    f.on_rtp("a", 100, 1000, b"opus", 30, 0.0)
    assert sinks["a"].sent == []  # nobody hears themselves
    pb = RtpPacket.parse(sinks["b"].sent[0])
    pc = RtpPacket.parse(sinks["c"].sent[0])
    assert (pb.payload_type, pc.payload_type) == (111, 96)
    assert pb.payload == pc.payload == b"opus"
    assert pb.ssrc == pc.ssrc == f.slots[0].ssrc and pb.marker == 1
    assert f.stats.packets_sent == 2 and f.stats.packets_forwarded == 1


def test_inaudible_dropped_at_once() -> None:
    f = room()
    sink = Sink()
    for u in ("a", "b"):
        f.set_present(u, True)
    f.add_outlet(outlet("b", sink))
    f.on_rtp("a", 1, 1, b"x", 10, 0.0)
    f.set_audible("a", True)
    f.on_rtp("a", 2, 961, b"y", 10, 0.0)
    f.set_audible("a", False)
    f.on_rtp("a", 3, 1921, b"z", 10, 0.0)
    assert [RtpPacket.parse(d).payload for d in sink.sent] == [b"y"]
    assert f.stats.packets_dropped_inaudible == 2
    assert f.slot_holders() == (None, None)


def test_loudest_take_slots_after_tick_and_sender_report() -> None:
    f = room(slots=2)
    sink = Sink()
    f.set_present("l", True)
    f.add_outlet(outlet("l", sink))
    levels = {"quiet": 100, "loud1": 10, "loud2": 20}
    for u in levels:
        f.set_present(u, True)
        f.set_audible(u, True)
    now = 0.0
    seq = dict.fromkeys(levels, 0)
    for _ in range(20):
        for u in ("quiet", "loud1", "loud2"):  # quiet always first: it gets a slot first
            f.on_rtp(u, seq[u], seq[u] * 960, u.encode(), levels[u], now)
            seq[u] += 1
        now += 0.1
        f.tick(now)
    assert set(f.slot_holders()) == {"loud1", "loud2"}
    tail = [RtpPacket.parse(d).payload for d in sink.sent[-10:]]
    assert set(tail) == {b"loud1", b"loud2"}
    # Each slot's stream stays continuous through the switch.
    by_ssrc: dict[int, list[int]] = {}
    for d in sink.sent:
        p = RtpPacket.parse(d)
        by_ssrc.setdefault(p.ssrc, []).append(p.sequence_number)
    for seqs in by_ssrc.values():
        assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))
    sr = f.sender_report(now, 1 << 40)
    assert sr is not None
    packets = RtcpPacket.parse(sr)
    assert {p.ssrc for p in packets[:-1]} == {s.ssrc for s in f.slots}
    assert sum(p.sender_info.packet_count for p in packets[:-1]) == f.stats.packets_forwarded


def test_leaving_frees_everything() -> None:
    f = room()
    f.set_present("a", True)
    f.set_audible("a", True)
    f.add_outlet(outlet("a", Sink()))
    f.on_rtp("a", 1, 1, b"x", 1, 0.0)
    assert f.slot_holders()[0] == "a"
    f.set_present("a", False)
    f.set_audible("a", False)
    assert f.slot_holders() == (None, None) and f.outlet_count == 0 and f.is_empty()
