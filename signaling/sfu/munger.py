"""Per-slot RTP munging: one continuous stream per slot, whoever speaks in it.

Like LiveKit's ``rtpmunger``: when a slot switches to another speaker, the
outgoing sequence number continues at last+1 and the timestamp advances by the
wall-clock time elapsed since the slot's last packet, so the receiver sees one
stream with a talk-spurt boundary (marker bit) rather than a new source.
Packets from the current speaker that predate the switch are dropped so that
no outgoing sequence number is ever reused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from .rtp import OPUS_CLOCK_RATE, seq_diff

#: Smallest timestamp step at a switch: one 20 ms Opus frame.
MIN_SWITCH_STEP: Final = OPUS_CLOCK_RATE // 50


@dataclass(frozen=True, slots=True)
class Munged:
    """Rewritten header fields of one forwarded packet."""

    sequence_number: int
    timestamp: int
    marker: bool


class SlotMunger:
    """Rewrites (seq, timestamp) of the speakers mapped to one slot onto one stream.

    ``now`` arguments are seconds on any monotonic clock; they are only used to
    size the timestamp jump at a switch.
    """

    __slots__ = (
        "_clock_rate",
        "_last_now",
        "_last_seq",
        "_last_ts",
        "_max_in_seq",
        "_pending_marker",
        "_seq_offset",
        "_source",
        "_start_seq",
        "_ts_offset",
        "octets",
        "packets",
    )

    def __init__(self, initial_seq: int, initial_ts: int, clock_rate: int = OPUS_CLOCK_RATE):
        self._clock_rate = clock_rate
        # Last emitted values; the first packet ever will be initial_seq+1.
        self._last_seq = (initial_seq - 1) & 0xFFFF
        self._last_ts = (initial_ts - MIN_SWITCH_STEP) & 0xFFFFFFFF
        self._last_now: float | None = None
        self._source: str | None = None
        self._seq_offset = 0
        self._ts_offset = 0
        self._start_seq = 0
        self._max_in_seq = 0
        self._pending_marker = False
        self.packets = 0
        self.octets = 0

    @property
    def source(self) -> str | None:
        """Identity of the speaker currently mapped to this slot (None when idle)."""
        return self._source

    @property
    def last_sequence_number(self) -> int:
        return self._last_seq

    @property
    def last_timestamp(self) -> int:
        return self._last_ts

    @property
    def last_sent_at(self) -> float | None:
        return self._last_now

    def switch(self, source: str | None) -> None:
        """Map the slot to another speaker (or to nobody). Offsets are fixed on its first packet."""
        if source != self._source:
            self._source = source
            self._pending_marker = source is not None
            self._start_seq = -1  # unknown until the first packet

    def restart(self) -> None:
        """The current speaker's packets now come from a new RTP stream (new numbering):
        map its next packet to the slot's next number, as at a switch."""
        if self._source is not None:
            self._pending_marker = True
            self._start_seq = -1

    def rewrite(
        self, source: str, sequence_number: int, timestamp: int, now: float
    ) -> Munged | None:
        """Map an incoming packet of ``source`` to the slot stream, or None to drop it."""
        if source != self._source:
            return None
        if self._start_seq < 0:
            # First packet of this speaker in this slot: continue the stream.
            if self._last_now is None:
                step = MIN_SWITCH_STEP
            else:
                step = max(MIN_SWITCH_STEP, round((now - self._last_now) * self._clock_rate))
            out_seq = (self._last_seq + 1) & 0xFFFF
            out_ts = (self._last_ts + step) & 0xFFFFFFFF
            self._seq_offset = (out_seq - sequence_number) & 0xFFFF
            self._ts_offset = (out_ts - timestamp) & 0xFFFFFFFF
            self._start_seq = sequence_number
            self._max_in_seq = sequence_number
        elif seq_diff(sequence_number, self._start_seq) < 0:
            # Older than the switch point: its outgoing number would be reused.
            return None
        if seq_diff(sequence_number, self._max_in_seq) > 0:
            self._max_in_seq = sequence_number
        out_seq = (sequence_number + self._seq_offset) & 0xFFFF
        out_ts = (timestamp + self._ts_offset) & 0xFFFFFFFF
        if seq_diff(out_seq, self._last_seq) > 0:
            self._last_seq = out_seq
            self._last_ts = out_ts
            self._last_now = now
        marker = self._pending_marker
        self._pending_marker = False
        return Munged(out_seq, out_ts, marker)

    def timestamp_at(self, now: float) -> int:
        """Extrapolated RTP timestamp of the slot at ``now`` (for RTCP sender reports)."""
        if self._last_now is None:
            return self._last_ts
        return (self._last_ts + round((now - self._last_now) * self._clock_rate)) & 0xFFFFFFFF
