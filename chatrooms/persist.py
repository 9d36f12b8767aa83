"""A room as plain data (dicts, lists, strings, numbers), for stores outside this process.

The audience is kept apart: a room of 30,000 listeners must not be read or written
whole for every command. ``room_to_state`` leaves listeners out; ``room_from_state``
takes the listeners a command involves (its actor and target) and the total count of
listeners, and knows those in the queue or invited from the state itself.
"""

from __future__ import annotations

from typing import Any

from chatrooms.ids import RoomId, UserId
from chatrooms.permissions import Role
from chatrooms.room import Member, Room, RoomStatus

STATE_FORMAT = 1


def member_to_data(m: Member) -> list[Any]:
    return [m.user_id, m.name, m.role.value, m.role_since, m.muted, m.mute_forced]


def member_from_data(data: list[Any]) -> Member:
    user_id, name, role, since, muted, forced = data
    return Member(UserId(user_id), name, Role(role), int(since), bool(muted), bool(forced))


def room_to_state(room: Room) -> dict[str, Any]:
    """Everything but the audience: listeners are stored apart, by the store."""
    return {
        "format": STATE_FORMAT,
        "room_id": room.room_id,
        "title": room.title,
        "topics": list(room.topics),
        "languages": list(room.languages),
        "stage_size": room.stage_size,
        "created_at": room.created_at,
        "kick_cooldown": room.kick_cooldown,
        "status": room.status.value,
        "locked": room.locked,
        "version": room.version,
        "queue_version": room.queue_version,
        "stage": [member_to_data(m) for m in room.members.values() if m.role.on_stage],
        "queue": [[u, n] for u, n in room.queue.items()],
        "invites": [[u, by, room.members[u].name] for u, by in room.invites.items()],
        "bans": sorted(room.bans),
        "kicks": [[u, t] for u, t in room.kicks.items()],
        "seq": room._seq,
    }


def room_from_state(
    state: dict[str, Any], listeners: dict[UserId, str], listener_count: int
) -> Room:
    """Rebuild a room from its state, the listeners a command involves, and their count."""
    if state.get("format") != STATE_FORMAT:
        raise ValueError(f"unknown room state format {state.get('format')!r}")
    room = Room(
        room_id=RoomId(state["room_id"]),
        title=state["title"],
        topics=tuple(state["topics"]),
        languages=tuple(state["languages"]),
        stage_size=int(state["stage_size"]),
        created_at=float(state["created_at"]),
        kick_cooldown=float(state["kick_cooldown"]),
        status=RoomStatus(state["status"]),
        locked=bool(state["locked"]),
        version=int(state["version"]),
        queue_version=int(state["queue_version"]),
    )
    for data in state["stage"]:
        member = member_from_data(data)
        room.members[member.user_id] = member
    room.queue = {UserId(u): n for u, n in state["queue"]}
    room.invites = {UserId(u): UserId(by) for u, by, _ in state["invites"]}
    # Queued and invited users are present listeners (a room invariant): no lookup needed.
    wanted = dict(room.queue)
    wanted.update({UserId(u): name for u, _, name in state["invites"]})
    wanted.update(listeners)
    for user_id, name in wanted.items():
        if user_id not in room.members:
            room.members[user_id] = Member(user_id, name, Role.LISTENER, 0)
    room.bans = {UserId(u) for u in state["bans"]}
    room.kicks = {UserId(u): float(t) for u, t in state["kicks"]}
    room._seq = int(state["seq"])
    room._listeners = listener_count
    return room


def listeners_of(room: Room) -> dict[UserId, str]:
    """The listeners present in this (possibly partial) room object."""
    return {m.user_id: m.name for m in room.members.values() if m.role is Role.LISTENER}
