"""Settings of one server node. Frozen: a running app never changes them."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

DEFAULT_STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    # HS256 key for tokens. Empty: a random key per process (only guest tokens then work).
    secret: str = ""
    # Browsers may join as listeners with a generated identity, and create rooms.
    guest_mode: bool = True
    redis_url: str | None = None  # None: the embedded in-memory backend
    redis_cluster: bool = False  # redis_url is a node of a Redis Cluster
    redis_timeout: float = 2.0
    redis_connections: int = 64  # the pool; commands wait for a free connection
    node_heartbeat: float = 2.0  # seconds between this node's heartbeats in Redis
    node_ttl: float = 10.0  # a node silent this long is dead: others remove its people
    node_id: str = ""  # empty: generated at start
    static_dir: Path = DEFAULT_STATIC_DIR

    # Wire limits.
    max_message_size: int = 64 * 1024  # a bigger frame closes the connection with 1009
    # WebSockets plus media sessions before new WebSockets get 503 node_full;
    # 0: the process's descriptor limit minus a reserve (signaling/capacity.py).
    max_connections: int = 0
    send_queue_size: int = 256  # frames waiting for one client before it is cut off
    coalesce_drop_at: int = 64  # above this backlog, coalescible updates are dropped
    commands_per_second: float = 20.0
    command_burst: int = 40
    heartbeat: float = 30.0
    join_timeout: float = 10.0  # the first frame must be a join within this time

    # Garbage collection (signaling/gctune.py): freeze survivors every N seconds so that
    # full passes skip the live connections; 0: CPython's defaults (tests, embedding).
    gc_freeze_interval: float = 0.0
    # A full pass (unfreeze, collect) when a quarter of the connections have turned
    # over, and at least this often (0: only on churn).
    gc_full_interval: float = 3600.0

    # Room behaviour.
    stats_interval: float = 1.0  # listener counts are published at most this often
    large_room: int = 2000  # with this many connections on a node, counts go out ...
    large_room_stats_every: int = 5  # ... every N-th stats interval only
    reconnect_grace: float = 20.0  # a dropped participant keeps their place this long
    creator_grace: float = 60.0  # the creator of a room must connect within this time
    kick_cooldown: float = 300.0
    max_rooms: int = 10_000

    # Media (the SFU).
    audio_slots: int = 3
    ice_addresses: tuple[str, ...] = ()  # gather candidates here; empty: all but loopback
    media_bind_host: str | None = None  # bind media sockets here (e.g. 0.0.0.0)
    public_ip: str | None = None  # announce this address instead (1:1 NAT)
    udp_port_min: int | None = None
    udp_port_max: int | None = None
    ice_servers: tuple[str, ...] = ()  # STUN/TURN URLs handed to clients, never used here
    turn_username: str | None = None  # credentials handed with the turn: URLs
    turn_password: str | None = None
    media_connect_timeout: float = 20.0
    media_silence_timeout: float = 30.0

    @property
    def on_loopback(self) -> bool:
        return is_loopback(self.host)
