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

# Descriptors kept for what the count below does not see: connections accepted and
# still in their HTTP request (thousands in a reconnect storm: with 1,000 kept, a node
# taking a dead node's 15,000 people ran out), a speaker's extra sockets, the Redis
# pool, the listening socket, log files.
FD_RESERVE_SHARE = 0.2
FD_RESERVE_MIN = 1000


def automatic_limit() -> int:
    """The process's soft descriptor limit minus a fifth (at least 1,000) of it."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 20
    return max(1, soft - max(FD_RESERVE_MIN, int(soft * FD_RESERVE_SHARE)))


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
