"""Prometheus metrics of one node, in a registry of its own (no global state).

Hot paths bump plain integers; the collector reads them at scrape time, so fan-out to
thousands of connections pays nothing per frame for metrics.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from signaling.capacity import Capacity
from signaling.connection import Counters
from signaling.gctune import FullPasses

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(slots=True)
class Traffic:
    """Inbound messages by type and errors by code."""

    messages_in: Tally[str] = field(default_factory=Tally)
    errors: Tally[str] = field(default_factory=Tally)
    joins: int = 0


@dataclass(frozen=True, slots=True)
class Gauges:
    connections: Callable[[], int]
    rooms: Callable[[], int]
    listeners: Callable[[], int]


class _NodeCollector(Collector):
    def __init__(
        self,
        traffic: Traffic,
        counters: Counters,
        passes: FullPasses,
        capacity: Capacity,
        gauges: Gauges,
    ) -> None:
        self._traffic, self._counters, self._gauges = traffic, counters, gauges
        self._passes, self._capacity = passes, capacity

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "chatrooms_connections", "Open WebSocket connections", self._gauges.connections()
        )
        yield GaugeMetricFamily("chatrooms_rooms", "Open rooms", self._gauges.rooms())
        yield GaugeMetricFamily(
            "chatrooms_listeners", "Listeners in open rooms", self._gauges.listeners()
        )
        inbound = CounterMetricFamily(
            "chatrooms_messages_in", "Messages received, by type", labels=["type"]
        )
        for kind, n in sorted(self._traffic.messages_in.items()):
            inbound.add_metric([kind], n)
        yield inbound
        yield CounterMetricFamily(
            "chatrooms_messages_out", "Frames sent to clients", value=self._counters.frames_out
        )
        errors = CounterMetricFamily(
            "chatrooms_errors", "Error replies and refusals, by code", labels=["code"]
        )
        for code, n in sorted(self._traffic.errors.items()):
            errors.add_metric([code], n)
        yield errors
        counters = (
            ("chatrooms_joins", "Successful joins", self._traffic.joins),
            (
                "chatrooms_coalesced_dropped",
                "Coalescible updates replaced or dropped for slow clients",
                self._counters.coalesced_dropped,
            ),
            (
                "chatrooms_slow_consumers",
                "Clients disconnected for falling behind",
                self._counters.slow_consumers,
            ),
            (
                "chatrooms_refused_full",
                "WebSockets refused with 503 node_full",
                self._capacity.refused,
            ),
            (
                "chatrooms_connections_closed",
                "WebSocket connections that ended",
                self._counters.closed,
            ),
            # Each full collection stops the node's event loop: operators should see it.
            ("chatrooms_gc_full_passes", "Full garbage collections", self._passes.count),
            (
                "chatrooms_gc_full_pass_seconds",
                "Time the node stood still in full garbage collections",
                self._passes.seconds,
            ),
        )
        for name, text, value in counters:
            yield CounterMetricFamily(name, text, value=value)
        yield GaugeMetricFamily(
            "chatrooms_capacity",
            "WebSockets plus media sessions this node takes before it answers 503",
            self._capacity.limit,
        )


class Metrics:
    def __init__(
        self,
        traffic: Traffic,
        counters: Counters,
        passes: FullPasses,
        capacity: Capacity,
        gauges: Gauges,
    ) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_NodeCollector(traffic, counters, passes, capacity, gauges))
        # Process CPU and memory, read by the load-test harness.
        ProcessCollector(registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
