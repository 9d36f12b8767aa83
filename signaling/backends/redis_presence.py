"""Which node holds each participant, and the removal of a dead node's participants.

Each node keeps ``cr:node:{id}`` alive with a TTL and lists what it holds in
``cr:node:{id}:members``; ``cr:{R}:presence`` maps a participant to their node. A node
whose key expired is reaped by one other node (a ``SET NX`` lock): every participant
still mapped to it is removed from their room, through the normal leave path, so the
host hands over as usual. A participant who reconnected elsewhere meanwhile is mapped
to the new node and is left alone.

A node only reaps after its own heartbeats have gone through for a while: after a
Redis outage every node's key may have expired, and nobody must be reaped for that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from chatrooms.ids import RoomId, UserId
from chatrooms.ports import Evict
from signaling.backends.redis_client import FAILURE, Client
from signaling.backends.redis_store import presence_key

log = logging.getLogger(__name__)

NODES = "cr:nodes"
SEP = "\x1f"

# Only if the participant is still ours (they may have reconnected to another node).
# The node's own list lives in another cluster slot, so it is updated apart.
RELEASE = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 1
end
return 0
"""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def alive_key(node_id: str) -> str:
    return f"cr:node:{node_id}"


def members_key(node_id: str) -> str:
    return f"cr:node:{node_id}:members"


class RedisPresence:
    def __init__(
        self,
        client: Client,
        node_id: str,
        *,
        heartbeat: float = 2.0,
        ttl: float = 10.0,
    ) -> None:
        self._r = client
        self.node_id = node_id
        self._heartbeat = heartbeat
        self._ttl = ttl
        self._release = client.register_script(RELEASE)
        self._task: asyncio.Task[None] | None = None
        self._evict: Evict | None = None
        self._healthy_since: float | None = None
        self._missing_since: dict[str, float] = {}
        self.reaped: list[str] = []

    async def claim(self, room_id: RoomId, user_id: UserId) -> None:
        with contextlib.suppress(*FAILURE):
            pipe = self._r.pipeline(transaction=False)
            pipe.hset(presence_key(room_id), user_id, self.node_id)
            pipe.sadd(members_key(self.node_id), f"{room_id}{SEP}{user_id}")
            await pipe.execute()

    async def release(self, room_id: RoomId, user_id: UserId) -> bool:
        try:
            released = await self._release(
                keys=[presence_key(room_id)], args=[user_id, self.node_id]
            )
            await self._r.srem(members_key(self.node_id), f"{room_id}{SEP}{user_id}")
        except FAILURE:
            return True  # Redis is away: the leave will be refused anyway
        return bool(released)

    async def start(self, evict: Evict) -> None:
        self._evict = evict
        await self._beat()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _beat(self) -> bool:
        try:
            pipe = self._r.pipeline(transaction=False)
            pipe.set(alive_key(self.node_id), "1", px=int(self._ttl * 1000))
            pipe.sadd(NODES, self.node_id)
            await pipe.execute()
        except FAILURE:
            self._healthy_since = None
            return False
        if self._healthy_since is None:
            self._healthy_since = time.monotonic()
        return True

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat)
            if await self._beat():
                with contextlib.suppress(*FAILURE):
                    await self._reap()

    async def _reap(self) -> None:
        now = time.monotonic()
        # Judge others only after our own heartbeats went through for a full TTL.
        if self._healthy_since is None or now - self._healthy_since < self._ttl:
            return
        nodes = [_text(n) for n in await self._r.smembers(NODES)]
        for node in nodes:
            if node == self.node_id:
                continue
            if await self._r.exists(alive_key(node)):
                self._missing_since.pop(node, None)
                continue
            first = self._missing_since.setdefault(node, now)
            if now - first < self._heartbeat * 2:
                continue  # seen missing twice, some time apart
            lock = await self._r.set(f"cr:node:{node}:reaper", self.node_id, nx=True, ex=60)
            if lock:
                await self._reap_node(node)

    async def _reap_node(self, node: str) -> None:
        entries = [_text(e) for e in await self._r.smembers(members_key(node))]
        log.warning("node %s is gone; removing its %d participants", node, len(entries))
        for entry in entries:
            room_id, _, user_id = entry.partition(SEP)
            holder = await self._r.hget(presence_key(room_id), user_id)
            if holder is not None and _text(holder) == node:
                await self._r.hdel(presence_key(room_id), user_id)
                if self._evict is not None:
                    with contextlib.suppress(Exception):
                        await self._evict(RoomId(room_id), UserId(user_id))
        await self._r.delete(members_key(node), alive_key(node))
        await self._r.srem(NODES, node)
        self._missing_since.pop(node, None)
        self.reaped.append(node)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
