"""A real Redis Cluster for tests: three primaries on free loopback ports."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from loadtest.nodes import free_ports
from tests.redis_server import RedisServer

REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"


class RedisCluster:
    """Three cluster-enabled redis-servers, slots spread over them, no replicas."""

    cluster = True

    def __init__(self, directory: Path, size: int = 3) -> None:
        self.created = False
        self.nodes: list[RedisServer] = []
        ports = free_ports(2 * size)  # all distinct: each node's port and bus port
        for i in range(size):
            node_dir = directory / f"node{i}"
            node_dir.mkdir()
            pair = (ports[2 * i], ports[2 * i + 1])
            self.nodes.append(RedisServer(node_dir, cluster=True, ports=pair))

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def start(self) -> None:
        """Start the nodes; the first time, make them a cluster (later, nodes.conf does)."""
        for node in self.nodes:
            node.start()
        if not self.created:
            self._create()
            self.created = True
        for node in self.nodes:
            node.wait_for("cluster_state:ok", "CLUSTER", "INFO")

    def _create(self) -> None:
        subprocess.run(
            [
                REDIS_CLI, "--cluster", "create",
                *(f"127.0.0.1:{n.port}" for n in self.nodes),
                "--cluster-replicas", "0", "--cluster-yes",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )  # fmt: skip

    def kill(self) -> None:
        for node in self.nodes:
            node.kill()
