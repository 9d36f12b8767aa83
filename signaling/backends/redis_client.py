"""The Redis client of a node: one Redis, or a Redis Cluster."""

from __future__ import annotations

import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.cluster import RedisCluster

from signaling.config import Settings

Client = aioredis.Redis | RedisCluster

# What an unreachable Redis (or cluster shard) looks like: the caller may retry later.
OUTAGE: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ClusterError,
    redis.exceptions.RedisClusterException,
    OSError,
)

# Any failure of Redis, including an error reply.
FAILURE: tuple[type[BaseException], ...] = (
    redis.exceptions.RedisError,
    redis.exceptions.RedisClusterException,
    OSError,
)
# ... or redis-py caught mid-reconnect (a connection without its reader or writer).
FAILURE_OR_RECONNECTING: tuple[type[BaseException], ...] = (*FAILURE, AttributeError)


def connect(settings: Settings) -> Client:
    assert settings.redis_url
    if settings.redis_cluster:
        # The cluster client keeps a pool per primary that fails when full instead of
        # waiting: the store bounds its own concurrency below this (see RedisRoomStore).
        return RedisCluster.from_url(
            settings.redis_url,
            max_connections=settings.redis_connections + 32,
            socket_timeout=settings.redis_timeout,
            socket_connect_timeout=settings.redis_timeout,
            health_check_interval=10,
        )
    # A bounded pool that makes commands wait for a connection: a join storm must queue
    # on a few dozen Redis connections, not open thousands (or fail for want of one).
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.redis_connections,
        timeout=settings.redis_timeout * 5,
        socket_timeout=settings.redis_timeout,
        socket_connect_timeout=settings.redis_timeout,
        health_check_interval=10,
    )
    return aioredis.Redis(connection_pool=pool)
