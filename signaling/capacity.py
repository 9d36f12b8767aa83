"""How many connections a node takes before it refuses new ones.

Every WebSocket and every media session holds a file descriptor, and a process may
hold only so many (RLIMIT_NOFILE). A node that runs out cannot accept, cannot open a
Redis connection or a UDP socket for a speaker, and its joins time out in the listen
queue. So a full node answers new WebSockets at once with HTTP 503 and Retry-After
(`node_full`): a client or load balancer tries another node, and the people already
in the node's rooms keep everything they need.
"""

from __future__ import annotations

import resource
from collections.abc import Callable

# Descriptors kept for what is not a connection: the listening socket, the Redis
# pool, log files, DTLS timers' sockets, the interpreter's own.
FD_RESERVE = 1000


def automatic_limit() -> int:
    """The process's soft descriptor limit, minus the reserve (at least 1)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 20
    return max(1, soft - FD_RESERVE)


class Capacity:
    """``usage()`` counts what holds a descriptor: open WebSockets and media sessions."""

    def __init__(self, limit: int, usage: Callable[[], int]) -> None:
        self.limit = limit
        self._usage = usage
        self.refused = 0

    def used(self) -> int:
        return self._usage()

    def full(self) -> bool:
        return self._usage() >= self.limit

    def admit(self) -> bool:
        """True if a new connection may come in; counts the refusals."""
        if self.full():
            self.refused += 1
            return False
        return True
