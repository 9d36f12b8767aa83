"""Encode server messages and decode client commands, as msgpack or JSON, from one schema.

Inbound frames are validated against the dataclass annotations of
:mod:`signaling.protocol.schema`; anything that does not fit raises
:class:`ProtocolError` with a typed code. Outbound messages are encoded once per format
and the bytes shared by every connection that receives them.
"""

from __future__ import annotations

import dataclasses
import json
import types
from collections.abc import Callable
from enum import Enum, StrEnum
from functools import cache
from typing import Annotated, Any, TypeVar, Union, cast, get_args, get_origin, get_type_hints

import msgpack

from chatrooms.events import Event
from signaling.protocol.schema import (
    COMMANDS,
    EVENT_TYPES,
    Command,
    MaxLen,
    ProtocolErrorCode,
    Range,
    ServerMessage,
)

Frame = bytes | str
T = TypeVar("T")
Validator = Callable[[Any, str], Any]


class WireFormat(StrEnum):
    MSGPACK = "msgpack"  # binary frames
    JSON = "json"  # text frames


class ProtocolError(Exception):
    def __init__(self, code: ProtocolErrorCode, message: str, request_id: int | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


def _invalid(path: str, what: str) -> ProtocolError:
    return ProtocolError(ProtocolErrorCode.INVALID_FIELD, f"{path}: {what}")


def _validator(tp: Any) -> Validator:
    """Build a checker for one annotation: str, int, bool, T | None, tuple[T, ...]."""
    limits: list[Any] = []
    while get_origin(tp) is Annotated:
        tp, *extra = get_args(tp)
        limits.extend(extra)
    max_len = next((x.n for x in limits if isinstance(x, MaxLen)), None)
    bounds = next((x for x in limits if isinstance(x, Range)), None)
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        options = [a for a in get_args(tp) if a is not type(None)]
        inner = _validator(options[0])

        def optional(value: Any, path: str) -> Any:
            return None if value is None else inner(value, path)

        return optional
    if origin is tuple:
        item = _validator(get_args(tp)[0])

        def sequence(value: Any, path: str) -> Any:
            if not isinstance(value, list | tuple):
                raise _invalid(path, "must be a list")
            if max_len is not None and len(value) > max_len:
                raise _invalid(path, f"at most {max_len} items")
            return tuple(item(v, f"{path}[{i}]") for i, v in enumerate(value))

        return sequence
    if tp is str:

        def string(value: Any, path: str) -> Any:
            if not isinstance(value, str):
                raise _invalid(path, "must be a string")
            if max_len is not None and len(value) > max_len:
                raise _invalid(path, f"at most {max_len} characters")
            try:
                value.encode("utf-8")  # lone surrogates could never be sent back out
            except UnicodeEncodeError as exc:
                raise _invalid(path, "must be valid Unicode") from exc
            return value

        return string
    if tp is int:

        def integer(value: Any, path: str) -> Any:
            if isinstance(value, bool) or not isinstance(value, int):
                raise _invalid(path, "must be an integer")
            if bounds is not None and not bounds.lo <= value <= bounds.hi:
                raise _invalid(path, f"must be {bounds.lo} to {bounds.hi}")
            return value

        return integer
    if tp is bool:

        def boolean(value: Any, path: str) -> Any:
            if not isinstance(value, bool):
                raise _invalid(path, "must be true or false")
            return value

        return boolean
    raise TypeError(f"no wire validator for {tp!r}")


@cache
def _fields_of(cls: Any) -> tuple[tuple[str, Validator, bool], ...]:
    hints = get_type_hints(cls, include_extras=True)
    return tuple(
        (
            f.name,
            _validator(hints[f.name]),
            f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING,
        )
        for f in dataclasses.fields(cls)
    )


def build(cls: type[T], data: dict[str, Any], *, ignore: frozenset[str] = frozenset()) -> T:
    """Check a decoded object against a schema dataclass and build it."""
    known = _fields_of(cast(Any, cls))
    names = {name for name, _, _ in known}
    unknown = sorted(repr(k) for k in set(data) - names - ignore)  # keys may be bytes
    if unknown:
        raise _invalid(unknown[0].strip("'\""), "unknown field")
    kwargs: dict[str, Any] = {}
    for name, check, required in known:
        if name in data:
            kwargs[name] = check(data[name], name)
        elif required:
            raise _invalid(name, "missing")
    return cls(**kwargs)


def _loads(frame: Frame) -> Any:
    try:
        if isinstance(frame, bytes | bytearray | memoryview):
            # Sizes are bounded by the WebSocket's max_msg_size before we get here.
            return msgpack.unpackb(frame, raw=False, strict_map_key=True)
        return json.loads(frame)
    except (
        ValueError,
        RecursionError,  # deeply nested JSON
        msgpack.ExtraData,
        msgpack.FormatError,
        msgpack.StackError,
    ) as exc:
        raise ProtocolError(ProtocolErrorCode.MALFORMED, f"cannot decode the frame: {exc}") from exc


def decode_command(frame: Frame) -> Command:
    data = _loads(frame)
    if not isinstance(data, dict):
        raise ProtocolError(ProtocolErrorCode.INVALID_MESSAGE, "a message must be an object")
    raw_id = data.get("id")
    request_id = (
        raw_id
        if isinstance(raw_id, int) and not isinstance(raw_id, bool) and 0 <= raw_id < 2**31
        else None
    )
    kind = data.get("type")
    if not isinstance(kind, str):
        raise ProtocolError(
            ProtocolErrorCode.INVALID_MESSAGE, 'a message needs a string "type"', request_id
        )
    cls = COMMANDS.get(kind)
    if cls is None:
        raise ProtocolError(
            ProtocolErrorCode.UNKNOWN_TYPE, f"unknown message type {kind[:40]!r}", request_id
        )
    try:
        return build(cls, data, ignore=frozenset({"type"}))
    except ProtocolError as exc:
        exc.request_id = request_id
        raise


def to_wire(obj: Any) -> Any:
    """Plain data for msgpack/JSON: dataclasses become objects, enums their values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out: dict[str, Any] = {}
        if isinstance(obj, ServerMessage):
            out["type"] = obj.type
        elif isinstance(obj, Event):
            out["type"] = EVENT_TYPES[type(obj)]
        elif isinstance(obj, Command):
            out["type"] = obj.type
        for f in dataclasses.fields(obj):
            out[f.name] = to_wire(getattr(obj, f.name))
        return out
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, tuple | list):
        return [to_wire(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_wire(v) for k, v in obj.items()}
    return obj


def dumps(data: Any, fmt: WireFormat) -> Frame:
    if fmt is WireFormat.MSGPACK:
        packed: bytes = msgpack.packb(data, use_bin_type=True)
        return packed
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def encode(message: ServerMessage | Event | Command, fmt: WireFormat) -> Frame:
    return dumps(to_wire(message), fmt)


class EncodedOnce:
    """One message, encoded lazily at most once per format, for fan-out."""

    __slots__ = ("_frames", "_wire", "message")

    def __init__(self, message: ServerMessage | Event) -> None:
        self.message = message
        self._wire: Any = None
        self._frames: dict[WireFormat, Frame] = {}

    def frame(self, fmt: WireFormat) -> Frame:
        frame = self._frames.get(fmt)
        if frame is None:
            if self._wire is None:
                self._wire = to_wire(self.message)
            frame = self._frames[fmt] = dumps(self._wire, fmt)
        return frame
