"""The test helper that starts redis-server survives a port taken before it binds."""

from __future__ import annotations

import socket
from pathlib import Path

from loadtest.nodes import free_ports
from tests.redis_server import RedisServer


def test_free_ports_are_distinct() -> None:
    ports = free_ports(50)
    assert len(set(ports)) == 50


def test_redis_server_moves_to_a_new_port_when_its_port_is_taken(tmp_path: Path) -> None:
    server = RedisServer(tmp_path)
    taken = server.port
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", taken))
        squatter.listen()
        server.start()
        try:
            assert server.port != taken
            with socket.create_connection(("127.0.0.1", server.port), timeout=2) as conn:
                conn.sendall(b"*1\r\n$4\r\nPING\r\n")
                assert conn.recv(64) == b"+PONG\r\n"
        finally:
            server.stop()
    assert "Address already in use" in (tmp_path / "redis.log").read_text()
