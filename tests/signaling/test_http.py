"""The HTTP API: health, metrics, the lobby, creating rooms; errors are JSON."""

from __future__ import annotations

from typing import Any

from tests.signaling.conftest import Server


async def test_healthz_and_config(server: Server) -> None:
    res = await server.session.get(server.url + "/healthz")
    assert res.status == 200
    body = await res.json()
    assert body["status"] == "ok" and body["node"].startswith("node-")
    config = await (await server.session.get(server.url + "/api/config")).json()
    assert config == {"guest_mode": True, "protocol": 1}


async def test_create_get_and_list_with_filters(server: Server) -> None:
    tech, _ = await server.create_room("h1", title="Rust vs Go", topics=["Tech"], languages=["en"])
    tea, _ = await server.create_room(
        "h2", title="茶话会", topics=["culture", "tea"], languages=["zh", "en"], stage_size=4
    )
    res = await server.session.get(f"{server.url}/api/rooms/{tea}")
    room = (await res.json())["room"]
    assert room["title"] == "茶话会" and room["stage_size"] == 4
    assert room["speakers"] == ["H2"] and room["listener_count"] == 0

    async def ids(query: str) -> set[str]:
        res = await server.session.get(f"{server.url}/api/rooms{query}")
        assert res.status == 200
        return {r["room_id"] for r in (await res.json())["rooms"]}

    assert await ids("") == {tech, tea}
    assert await ids("?topic=tech") == {tech}  # case-insensitive
    assert await ids("?language=zh") == {tea}
    assert await ids("?language=en&topic=tea") == {tea}
    assert await ids("?topic=sports") == set()


async def test_lobby_shows_listener_counts(server: Server) -> None:
    room_id, host_token = await server.create_room()
    held = [await server.client(room_id, host_token)]
    for user in ("a", "b", "c"):
        held.append(await server.join(room_id, user))
    rooms = (await (await server.session.get(server.url + "/api/rooms")).json())["rooms"]
    assert rooms[0]["listener_count"] == 3


async def test_create_needs_a_valid_token(server: Server) -> None:
    url = server.url + "/api/rooms"
    res = await server.session.post(url, json={"title": "x"})
    assert res.status == 401
    assert (await res.json())["error"]["code"] == "token_required"
    res = await server.session.post(
        url, json={"title": "x"}, headers={"Authorization": "Bearer garbage"}
    )
    assert (await res.json())["error"]["code"] == "token_invalid"
    expired = server.token("ann", ttl=-10)
    res = await server.session.post(
        url, json={"title": "x"}, headers={"Authorization": "Bearer " + expired}
    )
    assert res.status == 401 and (await res.json())["error"]["code"] == "token_expired"


async def _create(server: Server, body: Any) -> tuple[int, dict[str, Any]]:
    res = await server.session.post(
        server.url + "/api/rooms",
        data=body if isinstance(body, str) else None,
        json=None if isinstance(body, str) else body,
        headers={"Authorization": "Bearer " + server.token("ann")},
    )
    return res.status, await res.json()


async def test_create_validates_the_body(server: Server) -> None:
    cases: list[tuple[Any, str]] = [
        ("{oops", "malformed"),
        ([1, 2], "invalid_message"),
        ({}, "invalid_field"),
        ({"title": ""}, "invalid_argument"),
        ({"title": "t" * 121}, "invalid_field"),
        ({"title": "t", "stage_size": 0}, "invalid_field"),
        ({"title": "t", "stage_size": "ten"}, "invalid_field"),
        ({"title": "t", "topics": ["a", "b", "c", "d", "e", "f"]}, "invalid_field"),
        ({"title": "t", "languages": ["x" * 17]}, "invalid_field"),
        ({"title": "t", "owner": "me"}, "invalid_field"),
    ]
    for body, code in cases:
        status, data = await _create(server, body)
        assert status == 400, (body, data)
        assert data["error"]["code"] == code, (body, data)
        assert data["error"]["message"]
    rooms = (await (await server.session.get(server.url + "/api/rooms")).json())["rooms"]
    assert rooms == []


async def test_created_room_token_makes_the_creator_host(server: Server) -> None:
    status, data = await _create(server, {"title": "Standup", "languages": ["en"]})
    assert status == 201 and data["room"]["room_id"] == data["id"]
    host = await server.client(data["id"], data["token"])
    assert host.joined["snapshot"]["you"]["role"] == "host"


async def test_unknown_room_and_path_are_json_404(server: Server) -> None:
    res = await server.session.get(server.url + "/api/rooms/nope")
    assert res.status == 404 and (await res.json())["error"]["code"] == "not_found"
    res = await server.session.get(server.url + "/api/nothing-here")
    assert res.status == 404 and (await res.json())["error"]["code"] == "http_404"


async def test_metrics_in_prometheus_text(server: Server) -> None:
    room_id, host_token = await server.create_room()
    host = await server.client(room_id, host_token)
    ann = await server.join(room_id, "ann")  # held: a dropped client would close
    await host.ws.send_str('{"type": "nonsense"}')
    await host.expect("error")
    res = await server.session.get(server.url + "/metrics")
    assert res.status == 200 and res.content_type == "text/plain"
    text = await res.text()
    values = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert values["chatrooms_connections"] == 2, text
    assert values["chatrooms_rooms"] == 1
    assert values["chatrooms_listeners"] == 1
    assert values['chatrooms_messages_in_total{type="join"}'] == 2
    assert values['chatrooms_errors_total{code="unknown_type"}'] == 1
    assert values["chatrooms_messages_out_total"] >= 2
    assert "process_resident_memory_bytes" in values
    await ann.close()


async def test_lobby_page_is_served(server: Server) -> None:
    res = await server.session.get(server.url + "/")
    assert res.status == 200 and "chatrooms" in await res.text()
