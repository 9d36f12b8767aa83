"""Room state in Redis, shared by every node.

Keys of a room share the hash tag ``{room_id}`` so they live in one Redis Cluster slot:

* ``cr:{R}:state``: the room without its audience (msgpack of ``chatrooms.persist``);
* ``cr:{R}:rev``: a counter bumped by every commit: the version check of the CAS;
* ``cr:{R}:aud``: the audience, a hash listener -> display name;
* ``cr:rooms``: the set of open rooms (the lobby).

A command loads the state plus the listeners it involves, runs on that partial room
in Python, and commits with one Lua script that checks ``rev`` and that the involved
listeners are still (or still not) in the audience, writes the new state and the
audience changes, and publishes the events, all atomically: events leave in commit
order. A conflict retries. A plain listener's join or leave touches only the audience,
through a script that checks the room's gate (open, unlocked, not banned, not in a
kick cool-down), so 500 joins a second do not fight over the state.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Collection, Iterable
from typing import Any, TypeVar, cast

import msgpack
from redis.asyncio.cluster import RedisCluster

from chatrooms import errors
from chatrooms.events import Event, LeaveReason, ListenerJoined, ListenerLeft
from chatrooms.ids import RoomId, UserId
from chatrooms.permissions import Grant
from chatrooms.persist import listeners_of, room_from_state, room_to_state
from chatrooms.ports import AudiencePage, InvalidCursor, RoomCommand
from chatrooms.room import Room, validate_name
from chatrooms.snapshot import RoomInfo
from signaling.backends.redis_client import OUTAGE, Client
from signaling.backends.wire import pack_events

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_RETRIES = 50
AUDIENCE_SCANS = 8  # HSCAN calls at most per audience page (a sparse table yields few)
ROOMS = "cr:rooms"


def state_key(room_id: str) -> str:
    return f"cr:{{{room_id}}}:state"


def rev_key(room_id: str) -> str:
    return f"cr:{{{room_id}}}:rev"


def audience_key(room_id: str) -> str:
    return f"cr:{{{room_id}}}:aud"


def presence_key(room_id: str) -> str:
    return f"cr:{{{room_id}}}:presence"


def events_channel(room_id: str) -> str:
    return f"cr:{{{room_id}}}:events"


# A consistent read of the state, its rev, the audience size and the given listeners'
# names (in one script, as a cluster pipeline cannot be a transaction).
READ = """
local out = {redis.call('GET', KEYS[1]), redis.call('GET', KEYS[2]), redis.call('HLEN', KEYS[3])}
if #ARGV > 0 then out[4] = redis.call('HMGET', KEYS[3], unpack(ARGV)) end
return out
"""

COMMIT = """
local rev = tonumber(redis.call('GET', KEYS[2]) or '0')
if rev ~= tonumber(ARGV[1]) then return 0 end
local i = 5
local n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  if redis.call('HEXISTS', KEYS[3], ARGV[i]) == 0 then return 0 end
  i = i + 1
end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  if redis.call('HEXISTS', KEYS[3], ARGV[i]) == 1 then return 0 end
  i = i + 1
end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
  i = i + 2
end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  redis.call('HDEL', KEYS[3], ARGV[i])
  i = i + 1
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('INCR', KEYS[2])
if ARGV[4] ~= '' then redis.call(ARGV[3], KEYS[4], ARGV[4]) end
return 1
"""

# Returns {outcome, state, listener count}; outcome: joined | member | not_found |
# ended | banned | locked | kicked:<until>
JOIN_LISTENER = """
local blob = redis.call('GET', KEYS[1])
if not blob then return {'not_found', false, 0} end
local st = cmsgpack.unpack(blob)
local user = ARGV[1]
local outcome = 'joined'
if st.status ~= 'open' then outcome = 'ended' end
if outcome == 'joined' then
  for _, m in ipairs(st.stage) do if m[1] == user then outcome = 'member' end end
end
if outcome == 'joined' and redis.call('HEXISTS', KEYS[2], user) == 1 then outcome = 'member' end
if outcome == 'joined' then
  for _, b in ipairs(st.bans) do if b == user then outcome = 'banned' end end
end
if outcome == 'joined' then
  for _, k in ipairs(st.kicks) do
    if k[1] == user and tonumber(k[2]) > tonumber(ARGV[3]) then outcome = 'kicked:' .. k[2] end
  end
end
if outcome == 'joined' and st.locked and ARGV[4] ~= '1' then outcome = 'locked' end
if outcome == 'joined' then redis.call('HSET', KEYS[2], user, ARGV[2]) end
return {outcome, blob, redis.call('HLEN', KEYS[2])}
"""

# A listener who is not in the queue nor invited leaves by leaving the audience.
# Returns 1 if done, 0 if the state must change too (the general path).
LEAVE_LISTENER = """
local blob = redis.call('GET', KEYS[1])
if not blob then return 0 end
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then return 0 end
local st = cmsgpack.unpack(blob)
for _, q in ipairs(st.queue) do if q[1] == ARGV[1] then return 0 end end
for _, q in ipairs(st.invites) do if q[1] == ARGV[1] then return 0 end end
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
"""


def _unpack(blob: bytes) -> dict[str, Any]:
    data: dict[str, Any] = msgpack.unpackb(blob, raw=False)
    return data


def _pack(data: Any) -> bytes:
    packed: bytes = msgpack.packb(data, use_bin_type=True)
    return packed


def _audience_cursor(cursor: str | None) -> tuple[int, tuple[int, int, str] | None]:
    """A listing cursor -> (scan cursor, (count, end, last user id) to resume a batch)."""
    if cursor is None:
        return 0, None
    parts = cursor.split(":", 3)
    numbers = parts[:3]
    if not all(p.isascii() and p.isdigit() and int(p) < 2**64 for p in numbers):
        raise InvalidCursor("not a cursor of this listing")
    if len(parts) == 1:
        return int(parts[0]), None
    if len(parts) != 4 or not parts[3] or not 0 < int(parts[1]) <= 1000:
        raise InvalidCursor("not a cursor of this listing")
    return int(parts[0]), (int(parts[1]), int(parts[2]), parts[3])


class RedisRoomStore:
    def __init__(self, client: Client, *, concurrency: int = 64) -> None:
        self._r = client
        # A Redis Cluster takes sharded pub/sub: the room's channel lives on its shard.
        self._publish = "SPUBLISH" if isinstance(client, RedisCluster) else "PUBLISH"
        # Commands in flight at once: the cluster client's pools fail when full.
        self._gate = asyncio.Semaphore(concurrency)
        self._read = client.register_script(READ)
        self._commit = client.register_script(COMMIT)
        self._join = client.register_script(JOIN_LISTENER)
        self._leave = client.register_script(LEAVE_LISTENER)
        self._cache: dict[RoomId, Room] = {}
        self.conflicts = 0  # commits retried because another node committed first

    async def _call(self, op: Awaitable[T]) -> T:
        """Await a Redis operation; an outage becomes a typed, retryable error."""
        try:
            async with self._gate:
                return await op
        except OUTAGE as exc:
            raise errors.Unavailable("the room store is unavailable; try again") from exc
        except AttributeError as exc:  # redis-py mid-reconnect: a connection without a writer
            raise errors.Unavailable("the room store is unavailable; try again") from exc

    # ------------------------------------------------------------- reading
    async def _fetch(
        self, room_id: RoomId, involved: Collection[UserId]
    ) -> tuple[Room, int, dict[UserId, bool]] | None:
        """The partial room, its rev, and which involved users are in the audience."""
        users = list(dict.fromkeys(involved))

        keys = [state_key(room_id), rev_key(room_id), audience_key(room_id)]
        result = await self._call(self._read(keys=keys, args=users))
        blob, rev, count = result[0], result[1], result[2]
        if blob is None:
            return None
        names = result[3] if users else []
        listeners = {u: n.decode() for u, n in zip(users, names, strict=True) if n is not None}
        room = room_from_state(_unpack(blob), listeners, int(count))
        present = {u: u in listeners for u in users}
        return room, int(rev or 0), present

    def cached(self, room_id: RoomId) -> Room | None:
        return self._cache.get(room_id)

    async def load(self, room_id: RoomId) -> Room | None:
        fetched = await self._fetch(room_id, ())
        if fetched is None:
            self._cache.pop(room_id, None)
            return None
        room = fetched[0]
        self._remember(room)
        return room

    def _remember(self, room: Room) -> None:
        current = self._cache.get(room.room_id)
        # Never step back: a slower read must not undo a newer view.
        if current is None or (room.version, room.queue_version) >= (
            current.version,
            current.queue_version,
        ):
            self._cache[room.room_id] = room

    async def ensure_fresh(self, room_id: RoomId, events: Iterable[Event]) -> None:
        """Reload the cached view if these events are newer than it."""
        current = self._cache.get(room_id)
        if current is not None and all(
            e.version <= current.version and getattr(e, "queue_version", 0) <= current.queue_version
            for e in events
        ):
            return
        await self.load(room_id)

    async def refresh_counts(self, room_ids: Iterable[RoomId]) -> None:
        ids = [r for r in room_ids if r in self._cache]
        if not ids:
            return

        async def counts() -> list[Any]:
            pipe = self._r.pipeline(transaction=False)
            for room_id in ids:
                pipe.hlen(audience_key(room_id))
            result: list[Any] = await pipe.execute()
            return result

        for room_id, count in zip(ids, await self._call(counts()), strict=True):
            room = self._cache.get(room_id)
            if room is not None:
                room._listeners = int(count)

    async def list_rooms(self) -> list[RoomInfo]:
        members: set[bytes] = await self._call(self._r.smembers(ROOMS))  # type: ignore[arg-type]
        ids = [m.decode() for m in members]
        out = []
        for room_id in ids:
            fetched = await self._fetch(RoomId(room_id), ())
            if fetched is not None and fetched[0].is_open:
                out.append(fetched[0].info())
        return out

    async def list_audience(self, room_id: RoomId, cursor: str | None, limit: int) -> AudiencePage:
        """HSCAN the audience hash with COUNT ``limit``; total = HLEN.

        The cursor is Redis's scan cursor as a string. HSCAN's COUNT is only a hint: a
        small hash (listpack) comes back whole and a large one by buckets, so one batch
        can hold more than ``limit``. The rest of such a batch is read again from the same
        scan cursor, in user id order after the last one listed, with the cursor
        ``"<scan>:<count>:<end>:<user id>"`` (``end``: where that batch ended). If the
        batch read again ends elsewhere (the hash changed meanwhile), it is listed from
        its start: a repeat, never a loss.
        """
        scan, resume = _audience_cursor(cursor)
        key = audience_key(room_id)

        async def head() -> list[Any]:
            pipe = self._r.pipeline(transaction=False)
            pipe.exists(state_key(room_id))
            pipe.hlen(key)
            result: list[Any] = await pipe.execute()
            return result

        exists, total = await self._call(head())
        if not exists:
            raise errors.RoomNotFound("no such room")
        users: list[tuple[UserId, str]] = []
        for _ in range(AUDIENCE_SCANS):
            count = resume[0] if resume is not None else limit
            raw_next, raw_batch = await self._call(self._r.hscan(key, scan, count=count))
            next_scan = int(raw_next)
            batch = cast(dict[bytes, bytes], raw_batch)
            entries = sorted((UserId(u.decode()), n.decode()) for u, n in batch.items())
            if resume is not None and resume[1] == next_scan:
                entries = [e for e in entries if e[0] > resume[2]]
            space = limit - len(users)
            if len(entries) > space:
                users += entries[:space]
                return users, f"{scan}:{count}:{next_scan}:{users[-1][0]}", int(total)
            users += entries
            scan, resume = next_scan, None
            if scan == 0:
                return users, None, int(total)
            if len(users) == limit:
                break
        return users, str(scan), int(total)

    # ------------------------------------------------------------- writing
    async def create(self, room: Room) -> None:
        blob = _pack(room_to_state(room))

        async def write() -> bool:
            created = await self._r.set(state_key(room.room_id), blob, nx=True)
            if created:
                await self._r.sadd(ROOMS, room.room_id)
            return bool(created)

        if not await self._call(write()):
            raise errors.InvalidState("a room with this id exists")
        self._remember(room)

    async def apply(
        self, room_id: RoomId, command: RoomCommand, involved: Collection[UserId] = ()
    ) -> list[Event]:
        for attempt in range(MAX_RETRIES):
            fetched = await self._fetch(room_id, involved)
            if fetched is None:
                raise errors.RoomNotFound("no such room")
            room, rev, present = fetched
            before = listeners_of(room)
            events = command(room)  # raises, changing nothing stored, if refused
            if not events:
                self._remember(room)
                return events
            after = listeners_of(room)
            added = {u: n for u, n in after.items() if u not in before}
            removed = [u for u in before if u not in after]
            must_exist = [u for u, here in present.items() if here]
            must_absent = [u for u, here in present.items() if not here]
            sent = [e for e in events if e.visibility.value != "audience"]
            args: list[bytes | str | int | float] = [
                rev,
                _pack(room_to_state(room)),
                self._publish,
                pack_events(sent) if sent else b"",
                len(must_exist),
                *must_exist,
                len(must_absent),
                *must_absent,
                len(added),
            ]
            for user_id, name in added.items():
                args += [user_id, name]
            args += [len(removed), *removed]
            keys = [
                state_key(room_id),
                rev_key(room_id),
                audience_key(room_id),
                events_channel(room_id),
            ]
            committed = await self._call(self._commit(keys=keys, args=args))
            if committed:
                self._remember(room)
                return events
            # Someone else committed first: read again, after a jittered backoff so that
            # a burst of writers on one room spreads out instead of colliding again.
            self.conflicts += 1
            await asyncio.sleep(random.uniform(0, min(0.05, 0.0005 * 2**attempt)))
        raise errors.Unavailable("the room is too busy; try again")

    async def join(
        self, room_id: RoomId, user_id: UserId, name: str, *, now: float, grant: Grant | None
    ) -> list[Event]:
        if grant is not None:
            return await self.apply(
                room_id, lambda r: r.join(user_id, name, now=now, grant=grant), (user_id,)
            )
        name = validate_name(name)
        keys = [state_key(room_id), audience_key(room_id)]
        args: list[str | float] = [user_id, name, now, "0"]
        outcome_raw, blob, count = await self._call(self._join(keys=keys, args=args))
        outcome = outcome_raw.decode() if isinstance(outcome_raw, bytes) else str(outcome_raw)
        if outcome == "not_found":
            raise errors.RoomNotFound("no such room")
        if outcome == "ended":
            raise errors.RoomEnded("the room has ended")
        if outcome == "banned":
            raise errors.Banned("you are banned from this room")
        if outcome == "locked":
            raise errors.RoomLocked("the room is locked")
        if outcome.startswith("kicked:"):
            until = float(outcome.split(":", 1)[1])
            raise errors.KickedCooldown(
                "you were removed from this room; try again later", retry_after=until - now
            )
        room = room_from_state(_unpack(blob), {user_id: name}, int(count))
        self._remember(room)
        if outcome == "member":
            return []
        return [ListenerJoined(room_id=room_id, version=room.version, user_id=user_id, name=name)]

    async def leave(self, room_id: RoomId, user_id: UserId, reason: LeaveReason) -> list[Event]:
        keys = [state_key(room_id), audience_key(room_id)]
        if await self._call(self._leave(keys=keys, args=[user_id])):
            room = self._cache.get(room_id)
            version = room.version if room is not None else 0
            return [ListenerLeft(room_id=room_id, version=version, user_id=user_id, reason=reason)]
        return await self.apply(room_id, lambda r: r.leave(user_id, reason=reason), (user_id,))

    async def drop(self, room_id: RoomId) -> None:
        async def delete() -> None:
            await self._r.delete(
                state_key(room_id),
                rev_key(room_id),
                audience_key(room_id),
                presence_key(room_id),
            )
            await self._r.srem(ROOMS, room_id)

        await self._call(delete())
        self._cache.pop(room_id, None)

    def forget(self, room_id: RoomId) -> None:
        """This node no longer serves the room: stop caching it."""
        self._cache.pop(room_id, None)
