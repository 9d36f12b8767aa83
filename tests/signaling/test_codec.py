"""The codec: every message round-trips in both formats; bad input is a typed ProtocolError."""

from __future__ import annotations

import dataclasses
import json
import types
from enum import Enum
from typing import Annotated, Any, Union, get_args, get_origin, get_type_hints

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatrooms import events as ev
from signaling.protocol import schema as s
from signaling.protocol.codec import (
    EncodedOnce,
    ProtocolError,
    WireFormat,
    build,
    decode_command,
    dumps,
    encode,
)

FORMATS = list(WireFormat)
COMMAND_TYPES = sorted(s.COMMANDS)
SERVER_TYPES = sorted(s.SERVER_MESSAGES)
EVENT_CLASSES = sorted(s.EVENT_TYPES, key=lambda c: s.EVENT_TYPES[c])
# Hypothesis deadlines are wall-clock assertions: none here.
SETTINGS = settings(deadline=None, max_examples=40)

INVALID_FIELD = s.ProtocolErrorCode.INVALID_FIELD


# ------------------------------------------------------------------------- annotations
@dataclasses.dataclass(frozen=True)
class FieldSpec:
    """One field of a schema dataclass, its annotation taken apart."""

    name: str
    base: Any  # str, int, bool, float, tuple[...], an Enum, a dataclass
    optional: bool
    required: bool
    max_len: int | None
    bounds: s.Range | None


def _unwrap(tp: Any) -> tuple[Any, list[Any]]:
    limits: list[Any] = []
    while get_origin(tp) is Annotated:
        tp, *extra = get_args(tp)
        limits.extend(extra)
    while hasattr(tp, "__supertype__"):  # NewType (UserId, RoomId)
        tp = tp.__supertype__
    return tp, limits


def specs(cls: type) -> list[FieldSpec]:
    hints = get_type_hints(cls, include_extras=True)
    out = []
    for f in dataclasses.fields(cls):
        tp, limits = _unwrap(hints[f.name])
        optional = False
        if get_origin(tp) in (Union, types.UnionType):
            options = [a for a in get_args(tp) if a is not type(None)]
            assert len(options) == 1, f"{cls.__name__}.{f.name}: one type or None"
            optional = True
            tp, more = _unwrap(options[0])
            limits += more
        out.append(
            FieldSpec(
                name=f.name,
                base=tp,
                optional=optional,
                required=f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING,
                max_len=next((x.n for x in limits if isinstance(x, s.MaxLen)), None),
                bounds=next((x for x in limits if isinstance(x, s.Range)), None),
            )
        )
    return out


def values(spec: FieldSpec) -> st.SearchStrategy[Any]:
    """Any value the schema accepts for this field."""
    inner = _values_of(spec.base, spec.max_len, spec.bounds)
    return st.none() | inner if spec.optional else inner


def _values_of(tp: Any, max_len: int | None, bounds: s.Range | None) -> st.SearchStrategy[Any]:
    if tp is str:
        # Long limits (an SDP) get short values mostly; the boundary has its own tests.
        return st.text(max_size=min(max_len or 200, 200))
    if tp is bool:
        return st.booleans()
    if tp is int:
        lo, hi = (bounds.lo, bounds.hi) if bounds else (0, 2**31 - 1)
        return st.integers(lo, hi)
    if tp is float:
        return st.floats(allow_nan=False, allow_infinity=False)
    if isinstance(tp, type) and issubclass(tp, Enum):
        return st.sampled_from(list(tp))
    if get_origin(tp) is tuple:
        item, limits = _unwrap(get_args(tp)[0])
        item_max = next((x.n for x in limits if isinstance(x, s.MaxLen)), None)
        return st.lists(_values_of(item, item_max, None), max_size=min(max_len or 4, 4)).map(tuple)
    if dataclasses.is_dataclass(tp):
        return instances(tp)
    raise AssertionError(f"no strategy for {tp!r}")


def instances(cls: type) -> st.SearchStrategy[Any]:
    return st.fixed_dictionaries({sp.name: values(sp) for sp in specs(cls)}).map(
        lambda kw: cls(**kw)
    )


def simple_value(spec: FieldSpec) -> Any:
    """One valid, plain value for a field (for hand-made frames)."""
    if spec.base is str:
        return "x"
    if spec.base is int:
        return spec.bounds.lo if spec.bounds else 1
    raise AssertionError(f"no simple value for {spec}")


def minimal(cmd_type: str) -> dict[str, Any]:
    """The smallest valid command object of a type: its required fields."""
    data: dict[str, Any] = {"type": cmd_type}
    for sp in specs(s.COMMANDS[cmd_type]):
        if sp.required:
            data[sp.name] = simple_value(sp)
    return data


def plain(obj: Any) -> Any:
    """What msgpack/JSON decoding must give back, written independently of the codec."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, tuple | list):
        return [plain(v) for v in obj]
    return obj


def frame_of(data: Any, fmt: WireFormat) -> bytes | str:
    if fmt is WireFormat.MSGPACK:
        packed: bytes = msgpack.packb(data, use_bin_type=True)
        return packed
    return json.dumps(data)


def load(frame: bytes | str) -> Any:
    if isinstance(frame, bytes):
        return msgpack.unpackb(frame, raw=False)
    return json.loads(frame)


def decode_error(frame: bytes | str) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        decode_command(frame)
    return info.value


def bad(data: Any, fmt: WireFormat) -> ProtocolError:
    return decode_error(frame_of(data, fmt))


# Fields of each command, for parametrizing.
COMMAND_FIELDS = [
    (t, sp) for t in COMMAND_TYPES for sp in specs(s.COMMANDS[t]) if sp.name != "type"
]
STRING_FIELDS = [(t, sp) for t, sp in COMMAND_FIELDS if sp.base is str and sp.max_len]
INT_FIELDS = [(t, sp) for t, sp in COMMAND_FIELDS if sp.base is int]
REQUIRED_FIELDS = [(t, sp) for t, sp in COMMAND_FIELDS if sp.required]


def _ids(pairs: list[tuple[str, FieldSpec]]) -> list[str]:
    return [f"{t}.{sp.name}" for t, sp in pairs]


def test_the_tables_cover_the_schema() -> None:
    # Guards the parametrization below against silently testing nothing.
    assert len(COMMAND_TYPES) == len(s.COMMANDS) >= 20
    assert {"room_id", "token", "name", "sdp", "candidate", "sdp_mid", "user_id"} <= {
        sp.name for _, sp in STRING_FIELDS
    }
    assert {"id", "protocol", "sdp_mline_index"} <= {sp.name for _, sp in INT_FIELDS}
    assert {"room_id", "user_id", "sdp", "candidate"} <= {sp.name for _, sp in REQUIRED_FIELDS}


# ------------------------------------------------------------------------ round trips
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("cmd_type", COMMAND_TYPES)
@SETTINGS
@given(data=st.data())
def test_every_command_round_trips(cmd_type: str, fmt: WireFormat, data: st.DataObject) -> None:
    cmd = data.draw(instances(s.COMMANDS[cmd_type]))
    frame = encode(cmd, fmt)
    assert isinstance(frame, bytes if fmt is WireFormat.MSGPACK else str)
    assert load(frame)["type"] == cmd_type
    decoded = decode_command(frame)
    assert type(decoded) is type(cmd)
    assert decoded == cmd


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("cmd_type", COMMAND_TYPES)
def test_minimal_commands_decode_with_defaults(cmd_type: str, fmt: WireFormat) -> None:
    cmd = decode_command(frame_of(minimal(cmd_type), fmt))
    assert type(cmd) is s.COMMANDS[cmd_type]
    assert cmd.id is None
    if isinstance(cmd, s.Join):
        assert cmd.protocol == s.PROTOCOL_VERSION


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("msg_type", SERVER_TYPES)
@SETTINGS
@given(data=st.data())
def test_every_server_message_encodes_to_plain_data(
    msg_type: str, fmt: WireFormat, data: st.DataObject
) -> None:
    msg = data.draw(instances(s.SERVER_MESSAGES[msg_type]))
    frame = encode(msg, fmt)
    assert isinstance(frame, bytes if fmt is WireFormat.MSGPACK else str)
    assert load(frame) == {"type": msg_type, **plain(msg)}
    assert EncodedOnce(msg).frame(fmt) == frame


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("event_cls", EVENT_CLASSES, ids=lambda c: s.EVENT_TYPES[c])
@SETTINGS
@given(data=st.data())
def test_every_event_encodes_to_plain_data(
    event_cls: type[ev.Event], fmt: WireFormat, data: st.DataObject
) -> None:
    event = data.draw(instances(event_cls))
    frame = encode(event, fmt)
    assert isinstance(frame, bytes if fmt is WireFormat.MSGPACK else str)
    decoded = load(frame)
    assert decoded == {"type": s.EVENT_TYPES[event_cls], **plain(event)}
    assert set(decoded) - {"type"} == set(s.describe()["events"][s.EVENT_TYPES[event_cls]])


def test_nested_snapshot_enums_become_their_values() -> None:
    from chatrooms.permissions import Role
    from chatrooms.snapshot import RoomInfo, RoomSnapshot, StageMember, ViewerState

    info = RoomInfo(
        room_id="r",
        title="t",
        topics=("a", "b"),
        languages=(),
        stage_size=3,
        created_at=1.5,
        locked=False,
        status="open",
        speakers=("Hana",),
        listener_count=7,
    )
    snap = RoomSnapshot(
        info=info,
        version=4,
        queue_version=2,
        stage=(
            StageMember(user_id="h", name="Hana", role=Role.HOST, muted=False, mute_forced=False),
        ),
        queue=(),
        queue_length=0,
        invited=(),
        you=ViewerState(
            user_id="h",
            name="Hana",
            role=Role.HOST,
            hand_position=None,
            invited=False,
            muted=False,
            mute_forced=False,
        ),
    )
    for fmt in FORMATS:
        got = load(encode(s.Snapshot(snapshot=snap), fmt))
        assert got["type"] == "snapshot"
        assert got["snapshot"]["stage"] == [
            {"user_id": "h", "name": "Hana", "role": "host", "muted": False, "mute_forced": False}
        ]
        assert got["snapshot"]["info"]["topics"] == ["a", "b"]
        assert got["snapshot"]["you"]["hand_position"] is None
        assert "type" not in got["snapshot"]  # only messages are tagged


def test_json_is_compact_and_keeps_unicode() -> None:
    frame = dumps({"name": "Łukasz 🎤"}, WireFormat.JSON)
    assert frame == '{"name":"Łukasz 🎤"}'


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "frame",
    [b"\xc1", b"\x92\x01", b"", b"\x81\xa4type", msgpack.packb({"type": "ping"}) + b"\x00"],
    ids=["never-used-byte", "truncated-array", "empty", "truncated-map", "trailing-bytes"],
)
def test_malformed_msgpack(frame: bytes) -> None:
    err = decode_error(frame)
    assert err.code is s.ProtocolErrorCode.MALFORMED
    assert err.request_id is None


@pytest.mark.parametrize(
    "frame", ["{not json", "", '{"type": "ping"', '{"type": "ping"} x', "\x00"]
)
def test_malformed_json(frame: str) -> None:
    err = decode_error(frame)
    assert err.code is s.ProtocolErrorCode.MALFORMED
    assert err.request_id is None


def test_msgpack_from_bytearray_and_memoryview() -> None:
    raw = msgpack.packb({"type": "ping", "id": 3})
    assert decode_command(bytearray(raw)) == s.Ping(id=3)
    assert decode_command(memoryview(raw)) == s.Ping(id=3)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("data", [[1, 2, 3], 5, 2.5, "ping", None, True, []])
def test_non_object_is_invalid_message(fmt: WireFormat, data: Any) -> None:
    err = bad(data, fmt)
    assert err.code is s.ProtocolErrorCode.INVALID_MESSAGE
    assert err.request_id is None


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kind", [None, 5, True, ["ping"], {"t": "ping"}], ids=repr)
def test_missing_or_non_string_type_keeps_the_id(fmt: WireFormat, kind: Any) -> None:
    data: dict[str, Any] = {"id": 41, "user_id": "u"}
    if kind is not None:
        data["type"] = kind
    err = bad(data, fmt)
    assert err.code is s.ProtocolErrorCode.INVALID_MESSAGE
    assert err.request_id == 41
    assert bad({k: v for k, v in data.items() if k != "id"}, fmt).request_id is None


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kind", ["fly", "", "JOIN", "joined", "ack", "hand_raised", "x" * 500])
def test_unknown_type_keeps_the_id(fmt: WireFormat, kind: str) -> None:
    # Server message and event tags are not commands either.
    err = bad({"type": kind, "id": 7}, fmt)
    assert err.code is s.ProtocolErrorCode.UNKNOWN_TYPE
    assert err.request_id == 7
    assert len(err.message) < 100  # a huge type is not echoed whole


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(("cmd_type", "spec"), REQUIRED_FIELDS, ids=_ids(REQUIRED_FIELDS))
def test_missing_required_field(fmt: WireFormat, cmd_type: str, spec: FieldSpec) -> None:
    data = minimal(cmd_type) | {"id": 12}
    del data[spec.name]
    err = bad(data, fmt)
    assert err.code is INVALID_FIELD
    assert err.request_id == 12
    assert spec.name in err.message and "missing" in err.message


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("cmd_type", COMMAND_TYPES)
def test_unknown_extra_field(fmt: WireFormat, cmd_type: str) -> None:
    err = bad(minimal(cmd_type) | {"id": 13, "colour": "red"}, fmt)
    assert err.code is INVALID_FIELD
    assert err.request_id == 13
    assert "colour" in err.message and "unknown" in err.message


def _wrong_values(spec: FieldSpec) -> list[Any]:
    if spec.base is str:
        return [5, True, ["a"], {"a": 1}, 1.5] + ([] if spec.optional else [None])
    if spec.base is int:
        return ["5", True, False, 1.5, [1], {"a": 1}] + ([] if spec.optional else [None])
    raise AssertionError(spec)


WRONG_TYPES = [(t, sp, v) for t, sp in COMMAND_FIELDS for v in _wrong_values(sp)]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    ("cmd_type", "spec", "value"),
    WRONG_TYPES,
    ids=[f"{t}.{sp.name}={v!r}" for t, sp, v in WRONG_TYPES],
)
def test_wrong_field_type(fmt: WireFormat, cmd_type: str, spec: FieldSpec, value: Any) -> None:
    data = minimal(cmd_type) | {spec.name: value}
    if spec.name != "id":
        data["id"] = 14
    err = bad(data, fmt)
    assert err.code is INVALID_FIELD
    assert err.message.startswith(f"{spec.name}:")
    # A wrongly typed id cannot be echoed; any other field keeps the id.
    assert err.request_id == (None if spec.name == "id" else 14)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(("cmd_type", "spec"), STRING_FIELDS, ids=_ids(STRING_FIELDS))
def test_strings_one_over_the_limit(fmt: WireFormat, cmd_type: str, spec: FieldSpec) -> None:
    assert spec.max_len is not None
    at_limit = minimal(cmd_type) | {"id": 15, spec.name: "é" * spec.max_len}
    cmd = decode_command(frame_of(at_limit, fmt))
    assert getattr(cmd, spec.name) == "é" * spec.max_len  # counted in characters, not bytes
    err = bad(at_limit | {spec.name: "é" * (spec.max_len + 1)}, fmt)
    assert err.code is INVALID_FIELD
    assert err.request_id == 15
    assert err.message.startswith(f"{spec.name}:") and str(spec.max_len) in err.message


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(("cmd_type", "spec"), INT_FIELDS, ids=_ids(INT_FIELDS))
def test_ints_out_of_range(fmt: WireFormat, cmd_type: str, spec: FieldSpec) -> None:
    assert spec.bounds is not None, f"{cmd_type}.{spec.name} has no Range"
    lo, hi = spec.bounds.lo, spec.bounds.hi
    for ok in (lo, hi):
        cmd = decode_command(frame_of(minimal(cmd_type) | {spec.name: ok}, fmt))
        assert getattr(cmd, spec.name) == ok
    for out in (lo - 1, hi + 1, -(2**40), 2**40):
        data = minimal(cmd_type) | {spec.name: out}
        if spec.name != "id":
            data["id"] = 16
        err = bad(data, fmt)
        assert err.code is INVALID_FIELD, (spec.name, out)
        assert err.message.startswith(f"{spec.name}:")
        if spec.name != "id":
            assert err.request_id == 16


@pytest.mark.parametrize("fmt", FORMATS)
def test_explicit_null_for_optional_fields(fmt: WireFormat) -> None:
    cmd = decode_command(
        frame_of({"type": "join", "room_id": "r", "token": None, "name": None, "id": None}, fmt)
    )
    assert cmd == s.Join(room_id="r")
    err = bad({"type": "join", "room_id": "r", "protocol": None}, fmt)  # has a default, not None
    assert err.code is INVALID_FIELD and "protocol" in err.message


def test_non_string_map_keys_are_refused() -> None:
    err = decode_error(msgpack.packb({1: "x", "type": "ping"}))
    assert err.code is s.ProtocolErrorCode.MALFORMED


# ------------------------------------------------------------------------------ fuzzing
@SETTINGS
@given(frame=st.binary(max_size=300) | st.text(max_size=300))
def test_arbitrary_frames_raise_only_protocol_errors(frame: bytes | str) -> None:
    try:
        cmd = decode_command(frame)
    except ProtocolError as exc:
        assert exc.code in set(s.ProtocolErrorCode)
        assert isinstance(exc.message, str)
    else:
        assert isinstance(cmd, s.Command)


_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=80)
)
_json_like = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
_field_names = sorted({sp.name for _, sp in COMMAND_FIELDS})


@SETTINGS
@given(
    kind=st.sampled_from(COMMAND_TYPES) | st.text(max_size=12),
    body=st.dictionaries(
        st.sampled_from(_field_names) | st.text(max_size=8), _json_like, max_size=5
    ),
    fmt=st.sampled_from(FORMATS),
)
def test_arbitrary_objects_raise_only_protocol_errors(
    kind: str, body: dict[str, Any], fmt: WireFormat
) -> None:
    data = {**body, "type": kind}
    try:
        cmd = decode_command(frame_of(data, fmt))
    except ProtocolError as exc:
        assert exc.code in set(s.ProtocolErrorCode)
        raw_id = data.get("id")
        if exc.code is not s.ProtocolErrorCode.MALFORMED and type(raw_id) is int:
            # Echoed only when it is a valid request id (it must encode on the way back).
            assert exc.request_id == (raw_id if 0 <= raw_id < 2**31 else None)
    else:
        assert cmd.type == kind
        assert isinstance(cmd, s.COMMANDS[kind])


# ----------------------------------------------------------------- POST /api/rooms body
def test_create_room_request_builds_with_defaults() -> None:
    req = build(s.CreateRoomRequest, {"title": "Jazz"})
    assert req == s.CreateRoomRequest(title="Jazz", topics=(), languages=(), stage_size=10)
    full = build(
        s.CreateRoomRequest,
        {"title": "Jazz", "topics": ["music", "jazz"], "languages": ["en"], "stage_size": 50},
    )
    assert full.topics == ("music", "jazz")  # lists become tuples
    assert full.languages == ("en",)
    assert full.stage_size == 50


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": "t", "topics": [f"t{i}" for i in range(6)]}, "topics"),
        ({"title": "t", "topics": ["x" * 33]}, "topics[0]"),
        ({"title": "t", "topics": ["ok", 5]}, "topics[1]"),
        ({"title": "t", "topics": "music"}, "topics"),
        ({"title": "t", "languages": [f"l{i}" for i in range(6)]}, "languages"),
        ({"title": "t", "languages": ["x" * 17]}, "languages[0]"),
        ({"title": "t", "stage_size": 0}, "stage_size"),
        ({"title": "t", "stage_size": 51}, "stage_size"),
        ({"title": "t", "stage_size": "10"}, "stage_size"),
        ({"title": "t", "stage_size": True}, "stage_size"),
        ({"title": "x" * 121}, "title"),
        ({"title": 5}, "title"),
        ({}, "title"),
        ({"title": "t", "host": "me"}, "host"),
    ],
)
def test_create_room_request_validation(body: dict[str, Any], field: str) -> None:
    with pytest.raises(ProtocolError) as info:
        build(s.CreateRoomRequest, body)
    assert info.value.code is INVALID_FIELD
    assert info.value.message.startswith(f"{field}:"), info.value.message


def test_create_room_request_limits_are_inclusive() -> None:
    req = build(
        s.CreateRoomRequest,
        {
            "title": "x" * 120,
            "topics": ["t" * 32] * 5,
            "languages": ["l" * 16] * 5,
            "stage_size": 1,
        },
    )
    assert len(req.topics) == 5 and len(req.languages) == 5 and req.stage_size == 1


# Regressions: bugs found while writing these tests.
def test_mixed_bytes_and_str_unknown_keys_are_a_protocol_error() -> None:
    with pytest.raises(ProtocolError) as info:
        decode_command(msgpack.packb({"type": "ping", b"x": 1, "y": 2}, use_bin_type=True))
    assert info.value.code is s.ProtocolErrorCode.INVALID_FIELD


def test_deeply_nested_json_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError) as info:
        decode_command("[" * 5000)
    assert info.value.code is s.ProtocolErrorCode.MALFORMED


def test_lone_surrogates_are_refused() -> None:
    with pytest.raises(ProtocolError) as info:
        decode_command('{"type": "join", "room_id": "r", "name": "\\ud800"}')
    assert info.value.code is s.ProtocolErrorCode.INVALID_FIELD


@pytest.mark.parametrize("raw_id", [-1, 2**31, 2**70])
def test_out_of_range_ids_are_not_echoed(raw_id: int) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_command(f'{{"type": "nope", "id": {raw_id}}}')
    assert info.value.request_id is None
    encode(s.Error(code="x", message="m", id=info.value.request_id), WireFormat.MSGPACK)
