"""A real redis-server for tests, on a free loopback port, in a temporary directory."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from loadtest.nodes import free_ports

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


class RedisExited(RuntimeError):
    """redis-server stopped before it answered (most often: its port was taken)."""


class RedisServer:
    """Persistence as production should have it: an append-only file, fsync'd always."""

    def __init__(
        self, directory: Path, *, cluster: bool = False, ports: tuple[int, int] | None = None
    ) -> None:
        self.dir = directory
        self.port, self.bus_port = ports or free_ports(2)  # the bus port: cluster only
        self.cluster = cluster  # a node of a Redis Cluster
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = False  # once up, restarts keep the port

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start redis-server; on its first start, retry on new ports if it cannot bind.

        A port from ``free_ports()`` is free only when asked: a test client's
        outgoing connection may take it before redis-server binds (seen in CI).
        Later starts keep the port: a restarted server must be the same address.
        """
        attempts = 1 if self.started else 5
        for attempt in range(attempts):
            if attempt:
                self.port, self.bus_port = free_ports(2)
            self._spawn()
            try:
                self.wait_for("+PONG", "PING")
            except RedisExited:
                if attempt == attempts - 1:
                    raise
                continue
            self.started = True
            return

    def _spawn(self) -> None:
        log = self.dir / "redis.log"
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    REDIS_SERVER,
                    "--port", str(self.port),
                    "--bind", "127.0.0.1",
                    "--dir", str(self.dir),
                    "--appendonly", "yes",
                    "--appendfsync", "always",
                    "--save", "",
                    "--protected-mode", "yes",
                    *(
                        # The cluster bus port is port + 10000 unless given: may be taken.
                        ["--cluster-enabled", "yes", "--cluster-port", str(self.bus_port)]
                        if self.cluster
                        else []
                    ),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )  # fmt: skip

    def log_tail(self) -> str:
        try:
            lines = (self.dir / "redis.log").read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-10:])

    def wait_for(self, expected: str, *command: str) -> None:
        """Send ``command`` until the reply holds ``expected`` (10 s at most)."""
        request = "".join(f"${len(a)}\r\n{a}\r\n" for a in command)
        request = f"*{len(command)}\r\n" + request
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                    conn.sendall(request.encode())
                    if expected.encode() in conn.recv(4096):
                        return
            except OSError:
                pass
            if self.proc is not None and self.proc.poll() is not None:
                self.proc = None
                raise RedisExited(f"redis-server on {self.port} exited:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"redis-server on {self.port} never answered {expected}:\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None
