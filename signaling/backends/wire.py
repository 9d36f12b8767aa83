"""Room events as plain data for the bus between nodes (msgpack), and back."""

from __future__ import annotations

import dataclasses
import types
from enum import Enum
from functools import cache
from typing import Any, Union, cast, get_args, get_origin, get_type_hints

import msgpack

from chatrooms.events import Event
from signaling.protocol.codec import to_wire
from signaling.protocol.schema import EVENT_TYPES

_BY_TAG = {tag: cls for cls, tag in EVENT_TYPES.items()}


@cache
def _enum_fields(cls: Any) -> tuple[tuple[str, type[Enum]], ...]:
    """Fields of an event class whose values are enums (plain or optional)."""
    out = []
    for name, tp in get_type_hints(cls).items():
        if get_origin(tp) in (Union, types.UnionType):
            tp = next(a for a in get_args(tp) if a is not type(None))
        if isinstance(tp, type) and issubclass(tp, Enum):
            out.append((name, tp))
    return tuple(out)


def event_from_wire(data: dict[str, Any]) -> Event:
    cls = _BY_TAG[data["type"]]
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {k: v for k, v in data.items() if k in names}
    for name, enum in _enum_fields(cast(Any, cls)):
        if kwargs.get(name) is not None:
            kwargs[name] = enum(kwargs[name])
    event: Event = cls(**kwargs)
    return event


def pack_events(events: list[Event]) -> bytes:
    packed: bytes = msgpack.packb([to_wire(e) for e in events], use_bin_type=True)
    return packed


def unpack_events(data: bytes) -> list[Event]:
    return [event_from_wire(d) for d in msgpack.unpackb(data, raw=False)]
