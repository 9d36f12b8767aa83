"""node-kill: two nodes on a shared Redis; one is SIGKILLed mid-run and its listeners
reconnect to the other."""

from __future__ import annotations

from pathlib import Path

from tests.loadtest.conftest import loadtest


def test_node_kill(out: Path) -> None:
    report = loadtest(
        out, "cluster", "--nodes", "2", "--scenario", "node-kill", "--listeners", "200",
        "--media-listeners", "10", "--speakers", "1", "--workers", "2", "--duration", "20",
        "--kill-after", "5",
    )  # fmt: skip
    assert report["listeners_joined"] == report["listeners_target"] == 210
    kill = report["node_kill"]
    assert kill is not None and kill["listeners_dropped"] >= 100  # half of them were there
    assert kill["back_within_10s_pct"] == 100.0
    assert kill["state_unchanged"] is True
    assert report["reconnected"] >= kill["listeners_dropped"]
    assert report["media_listeners_ready"] >= 10
    # before the kill, media listeners on both nodes hear the speaker (the media bus);
    # only whole one-second buckets before the kill count: packets the killed node held
    # when it died are lost by design and fall in the bucket that straddles the kill
    head = [x for x in report["audio_timeline"] if x["t"] > 2 and x["t"] + 1 <= kill["t"]]
    head = [x for x in head if x["expected"]]
    assert head and all(x["loss_pct"] < 5 for x in head)
    # after the reconnections every media listener hears the speaker again
    tail = [x for x in report["audio_timeline"] if x["t"] > kill["t"] + 10 and x["expected"]]
    assert tail and all(x["loss_pct"] < 5 for x in tail[:-1])
