"""docs/PROTOCOL.md and the wire schema must agree: every message, field, code and reason.

The checks are plain functions returning a list of differences, so that a failure says
what differs and so that they can be shown to catch a mutated document.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from chatrooms import snapshot as snap
from signaling.protocol import schema as s
from signaling.protocol.codec import decode_command

DOC = Path(__file__).resolve().parents[2] / "docs" / "PROTOCOL.md"

# Second-level section of the document -> group of :func:`schema.describe`.
SECTIONS = {"Client commands": "commands", "Server messages": "server", "Events": "events"}
OBJECTS_SECTION = "Objects"
OBJECTS: dict[str, type] = {
    "RoomSnapshot": snap.RoomSnapshot,
    "RoomInfo": snap.RoomInfo,
    "StageMember": snap.StageMember,
    "QueueEntry": snap.QueueEntry,
    "ViewerState": snap.ViewerState,
    "You": s.You,
    "MediaConfig": s.MediaConfig,
    "IceServerConfig": s.IceServerConfig,
    "AudienceMember": s.AudienceMember,
}
ERRORS_SECTION = "Error codes"
BYE_SECTION = "Bye reasons and close codes"
HTTP_SECTION = "HTTP API"
CREATE_ROOM_HEADING = "POST /api/rooms"

_H2 = re.compile(r"^## (?P<title>.+?)\s*$")
_H3 = re.compile(r"^### (?P<title>.+?)\s*$")
_TYPE_HEADING = re.compile(r"^`(?P<name>[^`]+)`$")
_CODE_CELL = re.compile(r"^`(?P<name>[^`]+)`$")


@dataclass
class Subsection:
    section: str
    title: str
    line: int
    rows: list[list[str]] = field(default_factory=list)  # body rows of its first table
    tables: int = 0
    json_blocks: list[str] = field(default_factory=list)


@dataclass
class Doc:
    subsections: list[Subsection]
    section_tables: dict[str, list[list[str]]]  # rows of tables directly under a "##"


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _is_separator(cells: list[str]) -> bool:
    return all(re.fullmatch(r":?-{3,}:?", c) for c in cells)


def parse(text: str) -> Doc:
    """Split the document into "## section" / "### subsection" blocks with their tables."""
    subsections: list[Subsection] = []
    section_tables: dict[str, list[list[str]]] = {}
    section = ""
    current: Subsection | None = None
    in_table = False
    table_started_here = False
    fence: list[str] | None = None
    fence_lang = ""
    for number, line in enumerate(text.splitlines(), start=1):
        if fence is not None:
            if line.startswith("```"):
                if current is not None and fence_lang == "json":
                    current.json_blocks.append("\n".join(fence))
                fence = None
            else:
                fence.append(line)
            continue
        if line.startswith("```"):
            fence, fence_lang = [], line[3:].strip()
            in_table = False
            continue
        if m := _H2.match(line):
            section, current, in_table = m["title"], None, False
            continue
        if m := _H3.match(line):
            current = Subsection(section=section, title=m["title"], line=number)
            subsections.append(current)
            in_table = False
            continue
        if line.lstrip().startswith("|"):
            cells = _cells(line)
            if not in_table:  # the header row of a new table
                in_table = True
                table_started_here = True
                if current is not None:
                    current.tables += 1
                continue
            if _is_separator(cells):
                continue
            if current is not None:
                if current.tables == 1:
                    current.rows.append(cells)
            elif table_started_here:
                section_tables.setdefault(section, []).append(cells)
            continue
        in_table = False
    return Doc(subsections=subsections, section_tables=section_tables)


def _field_names(rows: list[list[str]]) -> tuple[list[str], list[str]]:
    """Backticked names of the first column, and the rows whose first cell is not one."""
    names, bad = [], []
    for row in rows:
        m = _CODE_CELL.match(row[0]) if row else None
        if m:
            names.append(m["name"])
        else:
            bad.append(" | ".join(row))
    return names, bad


def _compare_fields(where: str, documented: list[str], expected: tuple[str, ...]) -> list[str]:
    problems = []
    missing = [f for f in expected if f not in documented]
    extra = [f for f in documented if f not in expected]
    duplicated = sorted({f for f in documented if documented.count(f) > 1})
    if missing:
        problems.append(f"{where}: fields missing from the doc table: {missing}")
    if extra:
        problems.append(f"{where}: fields in the doc that the schema lacks: {extra}")
    if duplicated:
        problems.append(f"{where}: fields listed twice: {duplicated}")
    return problems


def check_messages(doc: Doc, described: dict[str, dict[str, tuple[str, ...]]]) -> list[str]:
    """Every message type of the schema documented, in its section, with exactly its fields."""
    problems: list[str] = []
    seen: dict[tuple[str, str], Subsection] = {}
    group_of_section = SECTIONS
    section_of_group = {g: sec for sec, g in SECTIONS.items()}
    all_types = {t: g for g, types in described.items() for t in types}
    for sub in doc.subsections:
        m = _TYPE_HEADING.match(sub.title)
        if sub.section not in group_of_section:
            if m and m["name"] in all_types:
                want = section_of_group[all_types[m["name"]]]
                problems.append(
                    f"line {sub.line}: `{m['name']}` is under '## {sub.section}', "
                    f"expected under '## {want}'"
                )
            continue
        group = group_of_section[sub.section]
        where = f"line {sub.line} '## {sub.section}' / '### {sub.title}'"
        if not m:
            problems.append(f"{where}: heading must be exactly ### `type_name`")
            continue
        name = m["name"]
        if name not in described[group]:
            if name in all_types:
                want = section_of_group[all_types[name]]
                problems.append(f"{where}: `{name}` belongs under '## {want}'")
            else:
                problems.append(f"{where}: `{name}` is not a {group} type in the schema")
            continue
        if (group, name) in seen:
            problems.append(f"{where}: `{name}` documented twice")
            continue
        seen[(group, name)] = sub
        if sub.tables == 0:
            problems.append(f"{where}: no field table")
            continue
        names, bad = _field_names(sub.rows)
        problems += [f"{where}: table row without a `field` name: {row!r}" for row in bad]
        problems += _compare_fields(f"`{name}` ({group})", names, described[group][name])
    for group, types in described.items():
        for name in types:
            if (group, name) not in seen:
                problems.append(
                    f"`{name}` ({group}) has no ### `{name}` heading "
                    f"under '## {section_of_group[group]}'"
                )
    for sec in SECTIONS:
        if not any(sub.section == sec for sub in doc.subsections):
            problems.append(f"no '## {sec}' section with messages")
    return problems


def check_examples(doc: Doc, described: dict[str, dict[str, tuple[str, ...]]]) -> list[str]:
    """Each message subsection has one JSON example of its own type with the schema's fields."""
    problems: list[str] = []
    for sub in doc.subsections:
        m = _TYPE_HEADING.match(sub.title)
        group = SECTIONS.get(sub.section)
        if group is None or not m or m["name"] not in described[group]:
            continue  # reported by check_messages
        name = m["name"]
        where = f"`{name}` ({group})"
        if len(sub.json_blocks) != 1:
            problems.append(f"{where}: expected one ```json example, found {len(sub.json_blocks)}")
            continue
        try:
            example = json.loads(sub.json_blocks[0])
        except ValueError as exc:
            problems.append(f"{where}: the JSON example does not parse: {exc}")
            continue
        if not isinstance(example, dict) or example.get("type") != name:
            problems.append(f'{where}: the example\'s "type" is not {name!r}')
            continue
        keys = set(example) - {"type"}
        schema_fields = set(described[group][name])
        if group == "commands":
            unknown = keys - schema_fields
            if unknown:
                problems.append(f"{where}: example has fields the schema lacks: {sorted(unknown)}")
                continue
            try:
                decode_command(sub.json_blocks[0])
            except Exception as exc:
                problems.append(f"{where}: the example is not a valid command: {exc}")
        elif keys != schema_fields:
            problems.append(
                f"{where}: example fields differ: missing {sorted(schema_fields - keys)}, "
                f"extra {sorted(keys - schema_fields)}"
            )
    return problems


def check_objects(doc: Doc) -> list[str]:
    """Nested objects (snapshot parts, You, media) documented with exactly their fields."""
    problems: list[str] = []
    found: dict[str, Subsection] = {
        sub.title: sub for sub in doc.subsections if sub.section == OBJECTS_SECTION
    }
    for name, cls in OBJECTS.items():
        sub = found.get(name)
        if sub is None:
            problems.append(f"object {name} has no '### {name}' under '## {OBJECTS_SECTION}'")
            continue
        names, bad = _field_names(sub.rows)
        problems += [f"object {name}: table row without a `field` name: {r!r}" for r in bad]
        expected = tuple(f.name for f in dataclasses.fields(cls))
        problems += _compare_fields(f"object {name}", names, expected)
    for title in found:
        if title not in OBJECTS:
            problems.append(f"'## {OBJECTS_SECTION}' documents {title!r}, which is not checked")
    return problems


def check_create_room(doc: Doc) -> list[str]:
    subs = [
        sub
        for sub in doc.subsections
        if sub.section == HTTP_SECTION and sub.title == CREATE_ROOM_HEADING
    ]
    if len(subs) != 1:
        return [f"expected one '### {CREATE_ROOM_HEADING}' under '## {HTTP_SECTION}'"]
    names, bad = _field_names(subs[0].rows)
    problems = [f"{CREATE_ROOM_HEADING} body: row without a `field` name: {r!r}" for r in bad]
    return problems + _compare_fields(
        f"{CREATE_ROOM_HEADING} body", names, s.field_names(s.CreateRoomRequest)
    )


def check_error_codes(doc: Doc, codes: tuple[str, ...]) -> list[str]:
    rows = doc.section_tables.get(ERRORS_SECTION, [])
    if not rows:
        return [f"no table under '## {ERRORS_SECTION}'"]
    names, bad = _field_names(rows)
    problems = [f"{ERRORS_SECTION}: row without a `code`: {r!r}" for r in bad]
    problems += [
        f"{ERRORS_SECTION}: `{c}` has no meaning"
        for c, row in zip(names, rows, strict=False)
        if len(row) < 2 or not row[1]
    ]
    missing = [c for c in codes if c not in names]
    extra = [c for c in names if c not in codes]
    if missing:
        problems.append(f"{ERRORS_SECTION}: codes in ERROR_CODES but not documented: {missing}")
    if extra:
        problems.append(f"{ERRORS_SECTION}: documented codes the schema lacks: {extra}")
    return problems


def check_bye_reasons(doc: Doc, close_codes: dict[str, int]) -> list[str]:
    rows = doc.section_tables.get(BYE_SECTION, [])
    if not rows:
        return [f"no table under '## {BYE_SECTION}'"]
    problems: list[str] = []
    documented: dict[str, str] = {}
    for row in rows:
        m = _CODE_CELL.match(row[0]) if row else None
        if not m or len(row) < 2:
            problems.append(f"{BYE_SECTION}: row is not | `reason` | close code | ...: {row!r}")
            continue
        documented[m["name"]] = row[1]
    for reason, code in close_codes.items():
        if reason not in documented:
            problems.append(f"{BYE_SECTION}: bye reason `{reason}` is not documented")
        elif documented[reason] != str(code):
            problems.append(
                f"{BYE_SECTION}: `{reason}` documented with close code "
                f"{documented[reason]!r}, the schema says {code}"
            )
    extra = [r for r in documented if r not in close_codes]
    if extra:
        problems.append(f"{BYE_SECTION}: documented reasons the schema lacks: {extra}")
    return problems


def all_problems(text: str) -> list[str]:
    doc = parse(text)
    described = s.describe()
    return (
        check_messages(doc, described)
        + check_examples(doc, described)
        + check_objects(doc)
        + check_create_room(doc)
        + check_error_codes(doc, tuple(s.ERROR_CODES))
        + check_bye_reasons(doc, {r.value: c for r, c in s.CLOSE_CODES.items()})
    )


@pytest.fixture(scope="module")
def text() -> str:
    return DOC.read_text(encoding="utf-8")


def _report(problems: list[str]) -> str:
    return "docs/PROTOCOL.md and the schema disagree:\n  " + "\n  ".join(problems)


# ------------------------------------------------------------------ the real document
def test_every_message_is_documented_with_exactly_its_fields(text: str) -> None:
    problems = check_messages(parse(text), s.describe())
    assert not problems, _report(problems)


def test_examples_are_valid_messages(text: str) -> None:
    problems = check_examples(parse(text), s.describe())
    assert not problems, _report(problems)


def test_nested_objects_are_documented(text: str) -> None:
    problems = check_objects(parse(text)) + check_create_room(parse(text))
    assert not problems, _report(problems)


def test_every_error_code_is_documented(text: str) -> None:
    problems = check_error_codes(parse(text), tuple(s.ERROR_CODES))
    assert not problems, _report(problems)


def test_every_bye_reason_is_documented_with_its_close_code(text: str) -> None:
    assert set(s.CLOSE_CODES) == set(s.ByeReason), "every ByeReason needs a close code"
    problems = check_bye_reasons(parse(text), {r.value: c for r, c in s.CLOSE_CODES.items()})
    assert not problems, _report(problems)


def test_http_and_transport_facts(text: str) -> None:
    for needle in (
        "GET /ws",
        "1009",
        "GET /healthz",
        "GET /metrics",
        "GET /api/rooms",
        "POST /api/rooms",
        "GET /api/rooms/{id}",
        "POST /api/guest",
        "GET /api/config",
        '{"error": {"code": "...", "message": "..."}}',
        "`resync`",
        "`queue_version`",
    ):
        assert needle in text, f"docs/PROTOCOL.md does not mention {needle!r}"


# ---------------------------------------------- the checks catch a document that drifted
def _mutate(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"mutation anchor {old!r} is not unique in the doc"
    return text.replace(old, new)


def test_the_real_document_has_no_problems_at_all(text: str) -> None:
    problems = all_problems(text)
    assert not problems, _report(problems)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        # A field row removed from a command.
        (
            "| `sdp_mline_index` | int (0 to 64) or null |"
            " RTCIceCandidateInit `sdpMLineIndex`. |\n",
            "",
            "`rtc_candidate` (commands): fields missing from the doc table: ['sdp_mline_index']",
        ),
        # A field the schema lacks, on an event.
        (
            "| `locked` | bool | Locked now. |\n",
            "| `locked` | bool | Locked now. |\n| `reason` | string | Why. |\n",
            "`room_lock_changed` (events): fields in the doc that the schema lacks: ['reason']",
        ),
        # A type the schema lacks.
        ("### `pong`", "### `pang`", "`pang` is not a server type in the schema"),
        # A heading not of the form ### `type`.
        ("### `ack`", "### ack", "heading must be exactly ### `type_name`"),
        # An error code missing and one invented.
        ("| `stage_full` |", "| `stage_is_full` |", "not documented: ['stage_full']"),
        ("| `stage_full` |", "| `stage_is_full` |", "the schema lacks: ['stage_is_full']"),
        # A wrong close code.
        (
            "| `replaced` | 4009 |",
            "| `replaced` | 4010 |",
            "`replaced` documented with close code '4010', the schema says 4009",
        ),
        # A nested object's field renamed.
        (
            "| `hand_position` | int or null |",
            "| `hand_pos` | int or null |",
            "object ViewerState: fields missing from the doc table: ['hand_position']",
        ),
        # An example that is not a valid command.
        (
            '{"type": "kick", "id": 21, "user_id": "guest-Zk1pQ8aR2b0x"}',
            '{"type": "kick", "id": 21, "user_id": 7}',
            "`kick` (commands): the example is not a valid command",
        ),
    ],
)
def test_checks_report_what_differs(text: str, old: str, new: str, expected: str) -> None:
    problems = all_problems(_mutate(text, old, new))
    assert any(expected in p for p in problems), _report(problems)


def test_a_command_documented_under_events_is_reported(text: str) -> None:
    # Move the whole `ping` subsection to the end of the Events section.
    start = text.index("### `ping`")
    end = text.index("### `raise_hand`")
    block = text[start:end]
    moved = text[:start] + text[end:]
    moved = _mutate(moved, "## HTTP API", block + "## HTTP API")
    problems = all_problems(moved)
    assert any("`ping` belongs under '## Client commands'" in p for p in problems), _report(
        problems
    )
    assert any("`ping` (commands) has no ### `ping` heading" in p for p in problems), _report(
        problems
    )


def test_a_missing_event_is_reported(text: str) -> None:
    problems = all_problems(_mutate(text, "### `hand_lowered`", "### hand lowered"))
    assert any(
        "`hand_lowered` (events) has no ### `hand_lowered` heading under '## Events'" in p
        for p in problems
    ), _report(problems)
