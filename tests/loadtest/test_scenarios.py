"""Short runs of the scenarios against a local one-node cluster: what the report says
(everyone joined, every event delivered, audio received), never how fast."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from loadtest.nodes import free_port, parse_metrics
from tests.loadtest.conftest import ROOT, loadtest

SMALL = ("--listeners", "200", "--media-listeners", "10", "--workers", "2")


def _everyone_joined(report: dict[str, Any]) -> None:
    assert report["listeners_target"] == 210
    assert report["listeners_joined"] == 210, report["join_errors"]
    assert report["joins_failed"] == 0, report["join_errors"]
    assert report["join_ms_p50"] is not None and report["join_ms_p99"] is not None
    # The last bot starts (target - 1) / ramp after the start: the room cannot fill sooner.
    assert report["joins_done_s"] >= (210 - 1) / report["config"]["ramp"] - 0.01
    assert report["join_rate_per_s"] == pytest.approx(210 / report["joins_done_s"], rel=0.01)


def _events_delivered(report: dict[str, Any], at_least: int) -> None:
    assert report["events_probed"] >= at_least
    assert report["event_delivered_pct"] == 100.0
    assert all(e["delivered"] == e["expected"] for e in report["events"])
    assert report["event_ms_p99"] is not None
    assert report["version_gaps"] == 0


def _audio_received(report: dict[str, Any]) -> None:
    assert report["media_listeners_ready"] == 10, report["media_failures"]
    assert report["audio_expected"] > 1000
    assert report["audio_received"] > 0
    assert report["audio_loss_pct"] < 1.0
    assert report["audio_latency_ms_p99"] is not None


def _nodes_measured(report: dict[str, Any], out: Path) -> None:
    for node in report["nodes"]:
        assert node["cpu_pct"] is not None and node["rss_mb"] > 0
    assert (out / "report.html").read_text().count("<img") == 4
    for png in ("join_cdf.png", "event_latency.png", "audio.png", "nodes.png"):
        assert (out / png).stat().st_size > 1000


def test_steady_room(out: Path) -> None:
    report = loadtest(
        out, "cluster", "--nodes", "1", "--scenario", "steady-room", *SMALL,
        "--speakers", "1", "--hand-raisers", "3", "--duration", "8",
    )  # fmt: skip
    assert not report["partial"]
    _everyone_joined(report)
    _events_delivered(report, at_least=5)
    _audio_received(report)
    _nodes_measured(report, out)
    assert report["reconnected"] == 0 and report["driver"]["command_errors"] == {}


def test_stage_churn(out: Path) -> None:
    report = loadtest(
        out, "cluster", "--nodes", "1", "--scenario", "stage-churn", *SMALL,
        "--speakers", "2", "--hand-raisers", "4", "--duration", "10", "--churn-interval", "1",
    )  # fmt: skip
    _everyone_joined(report)
    _events_delivered(report, at_least=8)
    kinds = {e["kind"] for e in report["events"]}
    assert "move_to_audience:role_changed" in kinds and "accept_invite:role_changed" in kinds
    _audio_received(report)


def test_join_storm(out: Path) -> None:
    report = loadtest(
        out, "cluster", "--nodes", "1", "--scenario", "join-storm", "--listeners", "400",
        "--media-listeners", "0", "--workers", "2", "--duration", "3",
    )  # fmt: skip
    assert report["listeners_joined"] == report["listeners_target"] == 400
    assert report["joins_failed"] == 0
    assert report["event_delivered_pct"] == 100.0


def test_run_against_a_node_with_guests_and_ctrl_c(tmp_path: Path) -> None:
    """`run --url` with guest identities (no secret); SIGINT gives a partial report."""
    port = free_port()
    node = subprocess.Popen(
        [sys.executable, "-m", "signaling", "serve", "--port", str(port), "--secret", "",
         "--ice-address", "127.0.0.1", "--log-level", "WARNING"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    out = tmp_path / "run"
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url)
        env = {k: v for k, v in os.environ.items() if k != "CHATROOMS_SECRET"}
        bots = subprocess.Popen(
            [sys.executable, "-m", "loadtest", "run", "--url", url, "--listeners", "100",
             "--media-listeners", "4", "--workers", "2", "--duration", "60", "--quiet",
             "--out", str(out)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while _connections(url) < 105 and time.monotonic() < deadline:  # and the host
            assert bots.poll() is None, "the harness exited early"
            time.sleep(0.5)
        time.sleep(3)
        bots.send_signal(signal.SIGINT)
        output, _ = bots.communicate(timeout=90)
        assert bots.returncode == 0, output[-3000:]
        report = json.loads((out / "report.json").read_text())
        assert report["partial"] is True
        assert report["listeners_joined"] == 104
        assert report["event_delivered_pct"] == 100.0
        assert report["media_listeners_ready"] == 4 and report["audio_received"] > 0
        assert "PARTIAL" in output
    finally:
        node.terminate()
        node.wait(timeout=10)


def _wait_healthy(url: str) -> None:
    import urllib.request

    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as res:
                if res.status == 200:
                    return
        except OSError:
            pass
        assert time.monotonic() < deadline, "node did not start"
        time.sleep(0.1)


def _connections(url: str) -> float:
    import urllib.request

    with urllib.request.urlopen(url + "/metrics", timeout=2) as res:
        return parse_metrics(res.read().decode()).get("connections", 0.0)
