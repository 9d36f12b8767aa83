"""``chatrooms-loadtest``: drive a deployment with bots in one room (or several).

    chatrooms-loadtest run --url http://127.0.0.1:8080 --listeners 2000 --media-listeners 20
    chatrooms-loadtest cluster --nodes 2 --listeners 30000 --media-listeners 200 \\
        --speakers 3 --hand-raisers 50

``run`` drives running nodes; ``cluster`` starts a redis-server (for more than one
node) and N nodes on 127.0.0.1, runs the same bots against them and stops everything
at the end. Presets: ``--scenario join-storm | steady-room | stage-churn | node-kill``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loadtest.scenarios import DEFAULTS, SCENARIOS


def _loopback(url: str) -> bool:
    from urllib.parse import urlsplit

    from signaling.config import is_loopback

    host = urlsplit(url).hostname or ""
    return is_loopback(host)


def _run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scenario", choices=sorted(SCENARIOS), default=None)
    p.add_argument("--listeners", type=int, help="signaling-only listeners (total)")
    p.add_argument("--media-listeners", type=int, help="listeners that also receive audio")
    p.add_argument("--speakers", type=int, help="speakers on stage, per room")
    p.add_argument("--hand-raisers", type=int, help="bots raising and lowering hands, per room")
    p.add_argument("--rooms", type=int, help="rooms (listeners are spread over them)")
    p.add_argument("--ramp", type=float, help="joins per second")
    p.add_argument("--duration", type=float, help="seconds of steady phase")
    p.add_argument("--workers", type=int, help="bot processes (default: by size)")
    p.add_argument("--seed", type=int)
    p.add_argument("--probe-interval", type=float, help="seconds between host probe commands")
    p.add_argument("--churn-interval", type=float, help="seconds between stage changes")
    p.add_argument("--kill-after", type=float, help="node-kill: seconds into the steady phase")
    p.add_argument("--out", type=Path, default=None, help="report directory")
    p.add_argument("--quiet", action="store_true", help="no progress line")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chatrooms-loadtest", description=(__doc__ or "").split("\n\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="drive running nodes")
    run.add_argument("--url", action="append", required=True, help="a node (repeat)")
    run.add_argument(
        "--secret",
        default=os.environ.get("CHATROOMS_SECRET") or None,
        help="mint bot tokens with this key (default $CHATROOMS_SECRET; none: guests)",
    )
    _run_options(run)
    cluster = sub.add_parser("cluster", help="start redis + N nodes, run, stop them")
    cluster.add_argument("--nodes", type=int, default=1)
    cluster.add_argument("--no-guests", action="store_true", help="start nodes with --no-guests")
    _run_options(cluster)
    return parser


def _config(args: argparse.Namespace, urls: list[str], secret: str | None) -> Any:
    from loadtest.runner import RunConfig, default_workers

    scenario = args.scenario or "steady-room"
    values = dict(DEFAULTS)
    values.update(SCENARIOS[scenario])
    for key in DEFAULTS:
        given = getattr(args, key, None)
        if given is not None:
            values[key] = given
    total = values["listeners"] + values["media_listeners"]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return RunConfig(
        urls=urls,
        rooms=max(1, int(values["rooms"])),
        listeners=int(values["listeners"]),
        media_listeners=int(values["media_listeners"]),
        speakers=int(values["speakers"]),
        hand_raisers=int(values["hand_raisers"]),
        ramp=float(values["ramp"]),
        duration=float(values["duration"]),
        workers=int(args.workers or default_workers(total)),
        seed=int(values["seed"]),
        out=args.out or Path(f"loadtest-{scenario}-{stamp}"),
        secret=secret,
        scenario=scenario,
        probe_interval=float(values["probe_interval"]),
        churn=bool(values["churn"]),
        churn_interval=float(values["churn_interval"]),
        kill_after=values["kill_after"],
        quiet=bool(args.quiet),
    )


def main(argv: Sequence[str] | None = None) -> int:
    from loadtest.runner import check_limits, run_sync

    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "run":
        urls = [u.rstrip("/") for u in args.url]
        for url in urls:
            if not _loopback(url):
                parser.error(f"{url}: the harness only drives 127.0.0.0/8 (loopback)")
        if args.scenario == "node-kill":
            parser.error("node-kill needs `cluster --nodes 2` or more (it kills a node)")
        cfg = _config(args, urls, args.secret)
        cluster = None
    else:
        if args.nodes < 1:
            parser.error("--nodes must be at least 1")
        if args.scenario == "node-kill" and args.nodes < 2:
            parser.error("node-kill needs --nodes 2 or more")
        cfg = None
    if cfg is not None:
        return _go(parser, cfg, None)

    from loadtest.nodes import Cluster

    cfg = _config(args, [], None)
    cluster = Cluster(args.nodes, cfg.out, guests=not args.no_guests)
    try:
        cluster.start()
        print(f"cluster: {args.nodes} node(s), redis {cluster.redis_url or 'none'}", flush=True)
        asyncio.run(cluster.wait_ready())
        cfg.urls = list(cluster.urls)
        cfg.secret = cluster.secret
        problem = check_limits(cfg)
        if problem:
            parser.error(problem)
        run_sync(cfg, cluster)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        cluster.stop()
    return 0


def _go(parser: argparse.ArgumentParser, cfg: Any, cluster: Any) -> int:
    from loadtest.runner import check_limits, run_sync

    problem = check_limits(cfg)
    if problem:
        parser.error(problem)
    try:
        run_sync(cfg, cluster)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (RuntimeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
