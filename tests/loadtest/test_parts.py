"""Pure pieces of the harness."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loadtest.common import quantile, rtp_payload_offset, source_addresses
from loadtest.nodes import NodeSeries, parse_metrics


def test_rtp_payload_offset_skips_csrcs_and_extension() -> None:
    assert rtp_payload_offset(bytes([0x80]) + bytes(11)) == 12
    assert rtp_payload_offset(bytes([0x82]) + bytes(11)) == 20
    ext = bytes([0xBE, 0xDE, 0x00, 0x01, 0x10, 0x85, 0, 0])
    assert rtp_payload_offset(bytes([0x90]) + bytes(11) + ext) == 20


def test_quantile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert quantile(values, 0.5) == 50.0
    assert quantile(values, 0.99) == 99.0
    assert quantile([], 0.5) is None


def test_source_addresses_are_loopback() -> None:
    assert source_addresses(3) == ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    assert source_addresses(300)[-1] == "127.0.1.45"


def test_metrics_parsing_and_cpu_rate() -> None:
    text = (
        "# HELP process_cpu_seconds_total x\n"
        "process_cpu_seconds_total 10.0\n"
        "process_resident_memory_bytes 2.097152e+08\n"
        "chatrooms_connections 42.0\n"
        'chatrooms_errors_total{code="x"} 1.0\n'
    )
    sample = parse_metrics(text)
    assert sample == {"cpu_s": 10.0, "rss": 209715200.0, "connections": 42.0}
    node = NodeSeries("http://127.0.0.1:1")
    node.add(100.0, sample)
    node.add(102.0, {**sample, "cpu_s": 11.0})
    assert node.cpu_pct == [50.0] and node.rss_mb == [200.0]


def test_the_node_plot_has_every_nodes_cpu_and_memory(tmp_path: Path, monkeypatch: Any) -> None:
    from matplotlib.figure import Figure

    from loadtest.report import _plots

    lines: dict[str, list[list[str]]] = {}

    def record(fig: Figure, path: Path, **_: Any) -> None:
        lines[Path(path).name] = [[ln.get_label() for ln in ax.get_lines()] for ax in fig.axes]

    monkeypatch.setattr(Figure, "savefig", record)
    series = {"t": [0.0, 1.0], "cpu_pct": [10.0, 20.0], "rss_mb": [90.0, 90.0]}
    report = {
        "events": [],
        "audio_timeline": [],
        "nodes": [{"node": n, "series": series} for n in range(3)],
        "progress": [{"t": 0.0, "harness_cpu_pct": 0.0}, {"t": 1.0, "harness_cpu_pct": 5.0}],
    }
    _plots(report, tmp_path, None)
    cpu, rss = lines["nodes.png"]
    assert cpu == ["node 0", "node 1", "node 2", "bots"]
    assert rss == ["node 0", "node 1", "node 2"]
