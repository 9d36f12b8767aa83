"""A real redis-server for tests, on a free loopback port, in a temporary directory."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class RedisServer:
    """Persistence as production should have it: an append-only file, fsync'd always."""

    def __init__(self, directory: Path, *, cluster: bool = False) -> None:
        self.dir = directory
        self.port = free_port()
        self.cluster = cluster  # a node of a Redis Cluster
        self.bus_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
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
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.wait_for("+PONG", "PING")

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
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on {self.port} never answered {expected}")
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
