"""Every command a role may not use is refused with a typed error, changes nothing,
and leaves the connection open."""

from __future__ import annotations

from typing import Any

import pytest

from chatrooms.ids import RoomId, UserId
from tests.signaling.conftest import Client, Server

# (role of the actor, command, fields, expected code)
FORBIDDEN: list[tuple[str, str, dict[str, Any], str]] = []
for cmd, fields in [
    ("invite", {"user_id": "lis2"}),
    ("move_to_audience", {"user_id": "spk2"}),
    ("mute", {"user_id": "spk2"}),
    ("unmute", {"user_id": "spk2"}),
    ("kick", {"user_id": "lis2"}),
    ("ban", {"user_id": "lis2"}),
    ("add_moderator", {"user_id": "spk2"}),
    ("remove_moderator", {"user_id": "mod"}),
    ("lock", {}),
    ("unlock", {}),
    ("end_room", {}),
    ("lower_hand", {"user_id": "lis2"}),
    ("step_down", {}),
    ("mute", {}),
]:
    FORBIDDEN.append(("listener", cmd, fields, "forbidden"))
for cmd, fields in [
    ("invite", {"user_id": "lis2"}),
    ("move_to_audience", {"user_id": "spk2"}),
    ("mute", {"user_id": "spk2"}),
    ("kick", {"user_id": "lis2"}),
    ("ban", {"user_id": "lis2"}),
    ("add_moderator", {"user_id": "spk2"}),
    ("remove_moderator", {"user_id": "mod"}),
    ("lock", {}),
    ("end_room", {}),
    ("lower_hand", {"user_id": "lis2"}),
    ("raise_hand", {}),
]:
    FORBIDDEN.append(("speaker", cmd, fields, "forbidden"))
for cmd, fields in [
    ("add_moderator", {"user_id": "spk2"}),
    ("remove_moderator", {"user_id": "mod2"}),
    ("end_room", {}),
    ("kick", {"user_id": "host"}),
    ("ban", {"user_id": "host"}),
    ("mute", {"user_id": "host"}),
    ("move_to_audience", {"user_id": "host"}),
    ("kick", {"user_id": "mod2"}),  # equal rank
    ("move_to_audience", {"user_id": "mod2"}),
]:
    FORBIDDEN.append(("moderator", cmd, fields, "forbidden"))
# Wrong state or target, from a role that has the capability.
FORBIDDEN += [
    ("host", "invite", {"user_id": "spk2"}, "invalid_target"),  # already on stage
    ("host", "invite", {"user_id": "nobody"}, "invalid_target"),
    ("host", "kick", {"user_id": "host"}, "invalid_target"),
    ("host", "remove_moderator", {"user_id": "spk2"}, "invalid_target"),
    ("listener", "accept_invite", {}, "invalid_state"),
    ("listener", "lower_hand", {}, "invalid_state"),
]

ACTORS = {"host": "host", "moderator": "mod", "speaker": "spk", "listener": "lis"}


async def _full_room(server: Server) -> tuple[str, dict[str, Client]]:
    room_id, host_token = await server.create_room(stage_size=10)
    clients = {"host": await server.client(room_id, host_token)}
    for user in ("mod", "mod2", "spk", "spk2", "lis", "lis2"):
        clients[user] = await server.join(room_id, user)
    host = clients["host"]
    for user in ("mod", "mod2", "spk", "spk2"):
        await host.ok("invite", user_id=user)
        await clients[user].ok("accept_invite")
    for user in ("mod", "mod2"):
        await host.ok("add_moderator", user_id=user)
    return room_id, clients


def _state(server: Server, room_id: str) -> Any:
    room = server.node.backends.store.cached(RoomId(room_id))
    assert room is not None
    return (
        room.snapshot_for(UserId("host")),
        dict(room.kicks),
        set(room.bans),
        dict(room.invites),
        list(room.queue),
    )


@pytest.mark.parametrize(
    ("role", "command", "fields", "code"),
    FORBIDDEN,
    ids=[f"{r}-{c}-{'-'.join(str(v) for v in f.values()) or 'self'}" for r, c, f, _ in FORBIDDEN],
)
async def test_refused_changes_nothing(
    server: Server, role: str, command: str, fields: dict[str, Any], code: str
) -> None:
    room_id, clients = await _full_room(server)
    actor = clients[ACTORS[role]]
    before = _state(server, room_id)
    reply = await actor.refused(command, code, **fields)
    assert reply["message"]
    assert _state(server, room_id) == before
    # The connection survives: it still answers.
    await actor.send({"type": "ping", "id": 99})
    assert (await actor.expect("pong"))["id"] == 99
