"""The ``chatrooms`` command: ``serve`` runs a node, ``token`` prints a signed token."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from chatrooms.ids import RoomId
from chatrooms.permissions import Grant
from signaling.auth import DEFAULT_TTL, TokenService
from signaling.config import Settings, is_loopback

SECRET_ENV = "CHATROOMS_SECRET"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chatrooms", description="Live audio chatrooms")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run a server node")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument(
        "--secret",
        default=os.environ.get(SECRET_ENV, ""),
        help=f"token signing key (default: ${SECRET_ENV}; empty: random, guests only)",
    )
    guests = serve.add_mutually_exclusive_group()
    guests.add_argument("--guests", dest="guests", action="store_true", default=None)
    guests.add_argument("--no-guests", dest="guests", action="store_false")
    serve.add_argument(
        "--redis",
        metavar="URL",
        help="share rooms with every node on this Redis (redis://HOST:PORT/DB); "
        "default: everything in this process",
    )
    serve.add_argument(
        "--redis-cluster",
        action="store_true",
        help="the --redis URL is a node of a Redis Cluster (sharded pub/sub)",
    )
    serve.add_argument("--node-id", default="", help="this node's name (default: generated)")
    serve.add_argument("--node-ttl", type=float, default=10.0, help=argparse.SUPPRESS)
    serve.add_argument("--node-heartbeat", type=float, default=2.0, help=argparse.SUPPRESS)
    serve.add_argument("--audio-slots", type=int, default=3)
    serve.add_argument(
        "--ice-address",
        action="append",
        default=[],
        help="address to gather ICE candidates on (repeat; default: all but loopback)",
    )
    serve.add_argument("--media-bind", help="bind media UDP sockets here (e.g. 0.0.0.0)")
    serve.add_argument("--public-ip", help="announce this address in candidates (1:1 NAT)")
    serve.add_argument("--udp-ports", help="media UDP port range, MIN-MAX")
    serve.add_argument(
        "--ice-server",
        action="append",
        default=[],
        help="STUN/TURN URL handed to clients (repeat), e.g. turn:turn.example.org:3478",
    )
    serve.add_argument("--turn-username", default=os.environ.get("CHATROOMS_TURN_USERNAME"))
    serve.add_argument("--turn-password", default=os.environ.get("CHATROOMS_TURN_PASSWORD"))
    serve.add_argument(
        "--gc-freeze",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="move long-lived objects out of the collector's full passes this often "
        "(0: CPython's defaults)",
    )
    serve.add_argument(
        "--max-connections",
        type=int,
        default=0,
        metavar="N",
        help="WebSockets plus media sessions before new WebSockets get 503 node_full "
        "(default 0: the process's descriptor limit minus a fifth)",
    )
    serve.add_argument(
        "--gc-full-every",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="with --gc-freeze: a full collection (a pause, logged) runs when a quarter "
        "of the connections have closed since the last one, and at least this often "
        "(0: only then)",
    )
    serve.add_argument("--log-level", default="INFO")

    token = sub.add_parser("token", help="print a signed token")
    token.add_argument("--user", required=True, help="user id")
    token.add_argument("--name", required=True, help="display name")
    token.add_argument("--room", help="room id for a grant")
    token.add_argument("--role", choices=[g.value for g in Grant], help="grant in --room")
    token.add_argument("--ttl", type=int, default=DEFAULT_TTL, help="seconds (default: a day)")
    token.add_argument("--secret", default=os.environ.get(SECRET_ENV, ""))
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The node's settings from ``chatrooms serve``'s arguments."""
    guest_mode = is_loopback(args.host) if args.guests is None else args.guests
    ports: tuple[int | None, int | None] = (None, None)
    if args.udp_ports:
        low, _, high = args.udp_ports.partition("-")
        ports = (int(low), int(high))
    return Settings(
        host=args.host,
        port=args.port,
        secret=args.secret,
        guest_mode=guest_mode,
        redis_url=args.redis,
        redis_cluster=args.redis_cluster,
        node_id=args.node_id,
        node_ttl=args.node_ttl,
        node_heartbeat=args.node_heartbeat,
        audio_slots=args.audio_slots,
        ice_addresses=tuple(args.ice_address),
        media_bind_host=args.media_bind,
        public_ip=args.public_ip,
        udp_port_min=ports[0],
        udp_port_max=ports[1],
        ice_servers=tuple(args.ice_server),
        turn_username=args.turn_username,
        turn_password=args.turn_password,
        gc_freeze_interval=args.gc_freeze,
        gc_full_interval=args.gc_full_every,
        max_connections=args.max_connections,
    )


def _serve(args: argparse.Namespace) -> int:
    import uvloop
    from aiohttp import web

    from signaling.app import create_app
    from signaling.backends.factory import RedisMismatch

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    settings = settings_from_args(args)
    if settings.redis_cluster and not settings.redis_url:
        print("error: --redis-cluster goes with --redis URL", file=sys.stderr)
        return 2
    if not settings.secret:
        print(
            f"note: no ${SECRET_ENV}: tokens from `chatrooms token` will not be accepted",
            file=sys.stderr,
        )
    app = create_app(settings)
    guests = "on" if settings.guest_mode else "off"
    print(f"chatrooms on http://{args.host}:{args.port}/ (guests {guests})")
    try:
        web.run_app(
            app,
            host=args.host,
            port=args.port,
            loop=uvloop.new_event_loop(),
            print=None,
            access_log=None,
            shutdown_timeout=5.0,
            backlog=4096,  # join storms: thousands of connects within a second
        )
    except RedisMismatch as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _token(args: argparse.Namespace) -> int:
    if not args.secret:
        print(f"error: set ${SECRET_ENV} or pass --secret", file=sys.stderr)
        return 2
    if (args.room is None) != (args.role is None):
        print("error: --room and --role go together", file=sys.stderr)
        return 2
    grants = {RoomId(args.room): Grant(args.role)} if args.room else None
    print(TokenService(args.secret).issue(args.user, args.name, grants=grants, ttl=args.ttl))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    return _token(args)


if __name__ == "__main__":
    sys.exit(main())
