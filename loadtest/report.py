"""Figures from the workers' and the driver's raw measurements: the summary table,
``report.json`` and ``report.html`` with its plots (matplotlib, Agg)."""

from __future__ import annotations

import array
import html
import json
import os
import platform
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from loadtest.bot import JoinStats
from loadtest.common import LATE_MS, quantile
from loadtest.driver import RoomLog
from loadtest.nodes import NodeSeries

if TYPE_CHECKING:
    from loadtest.runner import RunConfig

CLOCK_NOTE = (
    "All processes run on one machine and stamp with time.time() (the same system clock); "
    "a latency is arrival time minus send time across processes."
)


def _ms(values: Sequence[float] | np.ndarray[Any, Any]) -> dict[str, float | None]:
    ordered = sorted(float(v) for v in values)
    return {f"p{q}": _r(quantile(ordered, q / 100)) for q in (50, 95, 99)}


def _r(x: float | None, nd: int = 2) -> float | None:
    return None if x is None else round(x, nd)


def _array(raw: bytes, code: str) -> np.ndarray[Any, Any]:
    a = array.array(code)
    a.frombytes(raw)
    return np.asarray(a)


def build_report(
    cfg: RunConfig,
    results: list[dict[str, Any]],
    logs: list[RoomLog],
    series: list[NodeSeries],
    meta: dict[str, Any],
    driver_stats: JoinStats,
    progress: list[dict[str, Any]],
) -> dict[str, Any]:
    t0 = float(meta.get("t0", meta["started"]))
    failed: Counter[str] = Counter()
    for r in results:
        failed.update(r["failed"])
    join_ms = np.concatenate([_array(r["join_ms"], "d") for r in results] or [np.zeros(0)])
    joins = _ms(join_ms)
    target = cfg.listeners + cfg.media_listeners

    # --- events: probes (version -> send time) against arrivals at listeners
    arrivals: dict[tuple[int, int], list[np.ndarray[Any, Any]]] = {}
    bases: dict[int, list[np.ndarray[Any, Any]]] = {}
    for r in results:
        for key, raw in r["arrivals"].items():
            arrivals.setdefault(tuple(key), []).append(_array(raw, "d"))
        for room, raw in r["bases"].items():
            bases.setdefault(int(room), []).append(_array(raw, "q"))
    events = []
    all_event_ms: list[np.ndarray[Any, Any]] = []
    delivered_total = expected_total = 0
    for log in logs:
        room_bases = np.sort(np.concatenate(bases.get(log.index, []) or [np.zeros(0)]))
        for version, (kind, sent) in sorted(log.probes.items()):
            got = np.concatenate(arrivals.get((log.index, version), []) or [np.zeros(0)])
            expected = int(np.searchsorted(room_bases, version, side="left"))
            if not expected:
                continue  # before any listener joined
            lat = (got - sent) * 1000.0
            all_event_ms.append(lat)
            delivered = min(len(got), expected)
            delivered_total += delivered
            expected_total += expected
            events.append(
                {
                    "room": log.index,
                    "version": version,
                    "kind": kind,
                    "t": _r(sent - t0),
                    "expected": expected,
                    "delivered": len(got),
                    "delivered_pct": _r(100.0 * delivered / expected),
                    **{f"ms_{k}": v for k, v in _ms(lat).items()},
                }
            )
    event_ms = _ms(np.concatenate(all_event_ms) if all_event_ms else [])

    # --- audio: counted packets in each media listener's windows
    counted: dict[int, np.ndarray[Any, Any]] = {
        log.index: np.sort(np.concatenate([np.asarray(c) for c in log.counted_ns] or [np.zeros(0)]))
        / 1e9
        for log in logs
    }
    audio_expected = audio_received = audio_late = 0
    expected_by_s: Counter[int] = Counter()
    received_by_s: Counter[int] = Counter()
    latency_by_s: dict[int, list[np.ndarray[Any, Any]]] = {}
    restarts = ready = 0
    media_failed: Counter[str] = Counter()
    media_closed: Counter[str] = Counter()
    for r in results:
        a = r["audio"]
        audio_received += a["received"]
        audio_late += a["late"]
        ready += a["ready"]
        restarts += a["restarts"]
        media_failed.update(a["failed"])
        media_closed.update(a.get("closed", {}))
        for room, start, end in a["windows"]:
            sent_s = counted.get(room)
            if sent_s is None or end < start:
                continue
            lo, hi = np.searchsorted(sent_s, [start, end])
            audio_expected += int(hi - lo)
            whole: np.ndarray[Any, Any] = np.floor(sent_s[lo:hi]).astype(np.int64)
            expected_by_s.update(Counter(whole.tolist()))
        for sec, raw in a["latency"].items():
            lat = _array(raw, "f")
            received_by_s[int(sec)] += len(lat)
            latency_by_s.setdefault(int(sec), []).append(lat)
    all_audio = [x for chunks in latency_by_s.values() for x in chunks]
    audio_ms = _ms(np.concatenate(all_audio) if all_audio else [])
    lost = max(0, audio_expected - audio_received)
    audio_timeline = []
    for sec in sorted(set(expected_by_s) | set(received_by_s)):
        lat = np.sort(np.concatenate(latency_by_s.get(sec, []) or [np.zeros(0)]))
        exp = expected_by_s.get(sec, 0)
        audio_timeline.append(
            {
                "t": _r(sec - t0),
                "expected": exp,
                "received": received_by_s.get(sec, 0),
                "loss_pct": _r(100.0 * max(0, exp - received_by_s.get(sec, 0)) / exp)
                if exp
                else None,
                "ms_p50": _r(quantile(lat.tolist(), 0.5)),
                "ms_p99": _r(quantile(lat.tolist(), 0.99)),
            }
        )

    # --- reconnections
    recon = [x for r in results for x in r["reconnects"]]
    back_ms = [(b - d) * 1000.0 for d, b, _ in recon if b > 0]
    kill = meta.get("kill")
    node_kill: dict[str, Any] | None = None
    if kill is not None:
        k_at, victim = float(kill["at"]), int(kill["node"])
        hit = [(d, b) for d, b, u in recon if u == victim and k_at - 0.5 <= d <= k_at + 10.0]
        back10 = sum(1 for _, b in hit if b > 0 and b - k_at <= 10.0)
        node_kill = {
            "node": victim,
            "url": kill["url"],
            "t": _r(k_at - t0),
            "listeners_dropped": len(hit),
            "back_within_10s": back10,
            "back_within_10s_pct": _r(100.0 * back10 / len(hit)) if hit else None,
            "state_unchanged": kill.get("state_unchanged"),
            "state_before": kill.get("state_before"),
            "state_after": kill.get("state_after"),
        }

    # --- nodes
    nodes = []
    steady = float(meta.get("steady_start", t0))
    for i, s in enumerate(series):
        cpu = [c for t, c in zip(s.t, s.cpu_pct, strict=True) if t >= steady] or s.cpu_pct
        nodes.append(
            {
                "url": s.url,
                "node": i,
                "cpu_pct": _r(float(np.mean(cpu))) if cpu else None,
                "cpu_pct_max": _r(max(s.cpu_pct)) if s.cpu_pct else None,
                "rss_mb": _r(max(s.rss_mb)) if s.rss_mb else None,
                "rss_mb_end": _r(s.rss_mb[-1]) if s.rss_mb else None,
                "connections_max": max(s.connections) if s.connections else None,
                "scrape_failures": s.failures,
                "series": {
                    "t": [_r(t - t0) for t in s.t],
                    "cpu_pct": [_r(c, 1) for c in s.cpu_pct],
                    "rss_mb": [_r(m, 1) for m in s.rss_mb],
                },
            }
        )

    joined = sum(r["joined"] for r in results)
    filled = max((float(r.get("last_first_join", 0.0)) for r in results), default=0.0)
    return {
        "scenario": cfg.scenario,
        "partial": bool(meta.get("partial")),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(meta["started"])),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "clock": CLOCK_NOTE,
        "config": {
            "urls": cfg.urls,
            "rooms": cfg.rooms,
            "listeners": cfg.listeners,
            "media_listeners": cfg.media_listeners,
            "speakers": cfg.speakers,
            "hand_raisers": cfg.hand_raisers,
            "ramp": cfg.ramp,
            "duration": cfg.duration,
            "workers": cfg.workers,
            "seed": cfg.seed,
            "probe_interval": cfg.probe_interval,
            "churn": cfg.churn,
        },
        "phases_s": {
            k: _r(float(meta[k]) - t0)
            for k in ("ramp_end", "steady_start", "audio_end", "ended")
            if k in meta
        },
        "listeners_target": target,
        "listeners_joined": joined,
        "joins_attempted": sum(r["attempted"] for r in results),
        "joins_succeeded": sum(r["succeeded"] for r in results),
        "joins_failed": sum(failed.values()),
        "join_errors": dict(failed),
        "gave_up": sum(r["gave_up"] for r in results),
        # The rate the room filled at: everyone who joined, over the time from the
        # start of the ramp to the last one's first join (capped by --ramp).
        "joins_done_s": _r(filled - t0) if filled else None,
        "join_rate_per_s": _r(joined / (filled - t0)) if filled > t0 else None,
        "join_ms_p50": joins["p50"],
        "join_ms_p95": joins["p95"],
        "join_ms_p99": joins["p99"],
        "events_probed": len(events),
        "event_ms_p50": event_ms["p50"],
        "event_ms_p95": event_ms["p95"],
        "event_ms_p99": event_ms["p99"],
        "event_delivered_pct": _r(100.0 * delivered_total / expected_total)
        if expected_total
        else None,
        "version_gaps": sum(r["gaps"] for r in results),
        "events": events,
        "media_listeners_ready": ready,
        "media_failures": dict(media_failed),
        "media_restarts": restarts,
        "media_closed": dict(media_closed),
        "audio_expected": audio_expected,
        "audio_received": audio_received,
        "audio_lost": lost,
        "audio_late": audio_late,
        "audio_late_ms": LATE_MS,
        "audio_loss_pct": _r(100.0 * lost / audio_expected, 3) if audio_expected else None,
        "audio_latency_ms_p50": audio_ms["p50"],
        "audio_latency_ms_p99": audio_ms["p99"],
        "audio_timeline": audio_timeline,
        "speaker_packets_sent": sum(len(c) for log in logs for c in log.counted_ns),
        "drops": sum(r["drops"] for r in results),
        "reconnected": sum(r["reconnected"] for r in results),
        "reconnect_ms_p50": _ms(back_ms)["p50"],
        "reconnect_ms_p99": _ms(back_ms)["p99"],
        "byes": dict(sum((Counter(r["byes"]) for r in results), Counter())),
        "node_kill": node_kill,
        "driver": {
            "commands": sum(log.commands for log in logs),
            "command_errors": {k: v for log in logs for k, v in log.command_errors.items()},
            "unmatched_events": sum(log.unmatched for log in logs),
            "join_errors": dict(driver_stats.failed),
            "reconnected": driver_stats.reconnected,
        },
        "nodes": nodes,
        "harness_cpu_pct": _r(float(np.mean([p["harness_cpu_pct"] for p in progress[1:]])))
        if len(progress) > 1
        else None,
        "progress": progress,
        "_join_ms": join_ms,  # for the CDF plot; not written to report.json
    }


def _slash(r: dict[str, Any], *keys: str) -> str:
    return " / ".join(str(r[k]) for k in keys)


SUMMARY: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
    ("listeners joined", lambda r: _slash(r, "listeners_joined", "listeners_target")),
    (
        "joins attempted/ok/failed",
        lambda r: (
            _slash(r, "joins_attempted", "joins_succeeded", "joins_failed")
            + (f"  {r['join_errors']}" if r["join_errors"] else "")
        ),
    ),
    (
        "join rate /s (all in s)",
        lambda r: f"{r.get('join_rate_per_s')} ({r.get('joins_done_s')})",
    ),
    ("join ms p50/p95/p99", lambda r: _slash(r, "join_ms_p50", "join_ms_p95", "join_ms_p99")),
    ("events probed", lambda r: str(r["events_probed"])),
    ("event ms p50/p95/p99", lambda r: _slash(r, "event_ms_p50", "event_ms_p95", "event_ms_p99")),
    ("events delivered %", lambda r: str(r["event_delivered_pct"])),
    ("media listeners ready", lambda r: str(r["media_listeners_ready"])),
    (
        "media sessions ended by server",
        lambda r: f"{r['media_restarts']}  {r.get('media_closed') or ''}".rstrip(),
    ),
    ("audio expected/received", lambda r: _slash(r, "audio_expected", "audio_received")),
    (
        "audio lost/late",
        lambda r: _slash(r, "audio_lost", "audio_late") + f" (late: > {r['audio_late_ms']:.0f} ms)",
    ),
    ("audio loss %", lambda r: str(r["audio_loss_pct"])),
    ("audio ms p50/p99", lambda r: _slash(r, "audio_latency_ms_p50", "audio_latency_ms_p99")),
    ("drops / reconnected", lambda r: _slash(r, "drops", "reconnected")),
    ("reconnect ms p50/p99", lambda r: _slash(r, "reconnect_ms_p50", "reconnect_ms_p99")),
]


def summary_lines(report: dict[str, Any]) -> list[str]:
    rows = [(k, fn(report)) for k, fn in SUMMARY]
    for node in report["nodes"]:
        rows.append(
            (
                f"node {node['node']} cpu% avg/max, rss MB",
                f"{node['cpu_pct']} / {node['cpu_pct_max']}, {node['rss_mb']}",
            )
        )
    rows.append(("harness cpu% (all bot processes)", str(report.get("harness_cpu_pct"))))
    kill = report.get("node_kill")
    if kill:
        rows.append(
            (
                "node-kill back in 10 s",
                f"{kill['back_within_10s']} / {kill['listeners_dropped']}"
                f" ({kill['back_within_10s_pct']} %)",
            )
        )
        rows.append(("node-kill state unchanged", str(kill["state_unchanged"])))
    width = max(len(k) for k, _ in rows)
    head = f"scenario {report['scenario']}" + (
        " (PARTIAL: interrupted)" if report["partial"] else ""
    )
    return [head, "-" * (width + 40)] + [f"{k:<{width}}  {v}" for k, v in rows]


def _plots(
    report: dict[str, Any], out: Path, join_ms: np.ndarray[Any, Any] | None
) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made: list[tuple[str, str]] = []

    def save(fig: Any, name: str, title: str) -> None:
        fig.tight_layout()
        fig.savefig(out / name, dpi=90)
        plt.close(fig)
        made.append((name, title))

    join = np.sort(join_ms if join_ms is not None else np.zeros(0))
    fig, ax = plt.subplots(figsize=(7, 4))
    if len(join):
        ax.plot(join, np.arange(1, len(join) + 1) / len(join))
    ax.set_xlabel("join latency (ms, connect to joined)")
    ax.set_ylabel("share of joins")
    ax.grid(True, alpha=0.3)
    save(fig, "join_cdf.png", "Join latency CDF")

    ev = report["events"]
    fig, ax = plt.subplots(figsize=(7, 4))
    if ev:
        ax.plot([e["t"] for e in ev], [e["ms_p50"] for e in ev], ".-", label="p50")
        ax.plot([e["t"] for e in ev], [e["ms_p99"] for e in ev], ".-", label="p99")
        ax.legend()
    ax.set_xlabel("command sent (s since ramp start)")
    ax.set_ylabel("event delivery latency (ms)")
    ax.grid(True, alpha=0.3)
    save(fig, "event_latency.png", "Event delivery latency over time")

    tl = report["audio_timeline"]
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    if tl:
        a1.plot([x["t"] for x in tl], [x["loss_pct"] for x in tl], ".-")
        a2.plot([x["t"] for x in tl], [x["ms_p50"] for x in tl], ".-", label="p50")
        a2.plot([x["t"] for x in tl], [x["ms_p99"] for x in tl], ".-", label="p99")
        a2.legend()
    a1.set_ylabel("audio loss (%)")
    a2.set_ylabel("audio latency (ms)")
    a2.set_xlabel("send time (s since ramp start)")
    a1.grid(True, alpha=0.3)
    a2.grid(True, alpha=0.3)
    save(fig, "audio.png", "Audio loss and latency over time")

    fig, (c1, c2) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    for node in report["nodes"]:
        s = node["series"]
        c1.plot(s["t"], s["cpu_pct"], label=f"node {node['node']}")
        # Nodes often hold the same memory: dashes keep a line under another visible.
        style = ("-", "--", ":", "-.")[node["node"] % 4]
        c2.plot(s["t"], s["rss_mb"], style, label=f"node {node['node']}")
    prog = report["progress"][1:]
    if prog:
        c1.plot([p["t"] for p in prog], [p["harness_cpu_pct"] for p in prog], "--", label="bots")
    c1.set_ylabel("CPU (%, 100 = one core)")
    c2.set_ylabel("RSS (MB)")
    c2.set_xlabel("s since ramp start")
    for a in (c1, c2):
        a.grid(True, alpha=0.3)
        if report["nodes"]:
            a.legend()
    save(fig, "nodes.png", "CPU and memory per node")
    return made


def write_report(report: dict[str, Any], out: Path, quiet: bool = False) -> None:
    out.mkdir(parents=True, exist_ok=True)
    lines = summary_lines(report)
    print("\n".join(lines), flush=True)
    join_ms = report.pop("_join_ms", None)
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    plots = _plots(report, out, join_ms)
    body = "\n".join(
        f"<h2>{html.escape(title)}</h2><img src='{name}' alt='{html.escape(title)}'>"
        for name, title in plots
    )
    table = "\n".join(f"<tr><td><pre>{html.escape(line)}</pre></td></tr>" for line in lines)
    (out / "report.html").write_text(
        "<!doctype html><meta charset='utf-8'><title>chatrooms load test</title>"
        f"<h1>chatrooms load test: {html.escape(report['scenario'])}</h1>"
        f"<p>{html.escape(report['date'])}; {html.escape(report['clock'])}</p>"
        f"<table>{table}</table>{body}"
        "<p>All figures: <a href='report.json'>report.json</a></p>\n"
    )
    print(f"report: {out / 'report.json'}  {out / 'report.html'}", flush=True)
