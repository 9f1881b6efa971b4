"""Fuzzing the validator and bulk ingest.

The validator must give every line a verdict: an Event that PostgreSQL can store, or a
BadEventError whose reason can be printed and quarantined. Ingest must account for every
line: stored, counted as a duplicate, or quarantined under its line number.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from loader.connection import Connection
from loader.contract import FIELDS, STATUSES, Event
from loader.errors import BadEventError
from loader.events import parse_line
from loader.ingest import ingest_stream
from tests.support import query

BIGINT_MAX = 2**63 - 1
INTEGER_MAX = 2**31 - 1
ERROR_LIMIT_BYTES = 8 * 1024
MAX_NAME_LENGTH = 200
# Validator reasons show values shortened: a longer reason is a value leaking into it.
MAX_REASON_LENGTH = 500
MISSING = object()
"""A field value that removes the field."""

# Text as hostile as JSON can carry: any code point, lone surrogates and NUL included.
HOSTILE_CHARACTERS = st.characters() | st.sampled_from(["\x00", "\ud800", "\udfff", "\ufeff"])
HOSTILE_TEXT = st.text(HOSTILE_CHARACTERS, max_size=12)
KEYS = st.sampled_from(sorted(FIELDS)) | HOSTILE_TEXT
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | HOSTILE_TEXT


def json_containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Arrays and objects of `children`: a named function, not a lambda, because hypothesis
    reads its source to check that it recurses, which it cannot always do for a lambda."""
    return st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=4)


JSON_VALUES = st.recursive(SCALARS, json_containers, max_leaves=12)

# What a valid event may hold: any Unicode text but NUL.
STORABLE_CHARACTERS = st.characters(codec="utf-8", exclude_characters="\x00")
STORABLE_TEXT = st.text(STORABLE_CHARACTERS, max_size=12)
NAMES = st.text(STORABLE_CHARACTERS, min_size=1, max_size=20)


def storable_containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Arrays and objects of `children` that jsonb can hold (see json_containers)."""
    return st.lists(children, max_size=3) | st.dictionaries(STORABLE_TEXT, children, max_size=3)


STORABLE_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | STORABLE_TEXT,
    storable_containers,
    max_leaves=8,
)
OFFSETS = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=9, minutes=59))]
)
# A day inside both ends: any offset keeps the instant within a UTC datetime.
EVENT_TIMES = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=OFFSETS
).map(datetime.isoformat)
# Each run has one name; `'` and `%s` prove names reach SQL only as parameters.
PIPELINES = {"run-a": "daily_sales", "run-b'); --": "o'brien %s", "run-c": "é€😀"}


@st.composite
def valid_events(draw: st.DrawFn) -> dict[str, Any]:
    """An event the contract accepts, naming its run's pipeline (so it is never orphaned)."""
    run_key = draw(st.sampled_from(sorted(PIPELINES)))
    document = {
        "event_id": str(draw(st.uuids())),
        "run_key": run_key,
        "pipeline_name": PIPELINES[run_key],
        "status": draw(st.sampled_from(STATUSES)),
        "event_time": draw(EVENT_TIMES),
    }
    optional = {
        "stage_name": st.none() | NAMES,
        "records_processed": st.none() | st.integers(0, BIGINT_MAX),
        "error_message": st.none() | STORABLE_TEXT,
        "attempt": st.integers(1, INTEGER_MAX),
        "attributes": st.none() | st.dictionaries(STORABLE_TEXT, STORABLE_JSON, max_size=3),
    }
    for field, values in optional.items():
        if draw(st.booleans()):
            document[field] = draw(values)
    return document


def naive_time(moment: datetime) -> str:
    return moment.isoformat()


# Values that break each field for sure (MISSING: the field is removed, where it is required).
BAD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "event_id": st.sampled_from([12, "", "not-a-uuid", [], {"id": 1}, "\x00"]),
    "run_key": st.sampled_from([MISSING, None, "", "r" * 201, 17, "run\x00", "\ud800"]),
    "pipeline_id": st.integers(max_value=0) | st.integers(min_value=BIGINT_MAX + 1)
    | st.sampled_from([1.5, True, "1"]),
    "pipeline_name": st.sampled_from(["", "p" * 201, ["p"], "\x00", 3]),
    "stage_name": st.sampled_from(["", "s" * 201, 3, ["s"], "x\udc00"]),
    "status": st.sampled_from([MISSING, None, "done", "RUNNING", 1, ["running"]]),
    "event_time": st.sampled_from([MISSING, "yesterday", 1767261600, "2026-13-01T00:00Z"])
    | st.datetimes().map(naive_time),
    "records_processed": st.integers(max_value=-1) | st.integers(min_value=BIGINT_MAX + 1)
    | st.sampled_from([2.5, 1e3, True, "12", float("nan")]),
    "error_message": st.sampled_from([404, ["boom"], {"e": 1}, "bo\x00om", "\ud800"]),
    "attempt": st.integers(max_value=0) | st.integers(min_value=INTEGER_MAX + 1)
    | st.sampled_from([1.5, False, "2"]),
    "attributes": st.sampled_from(["host=a", [1], 5, True, {"r": float("inf")}, {"k": "\x00"}]),
}  # fmt: skip


def encode(document: object, *, escaped: bool = True) -> bytes:
    """JSON bytes; unescaped lone surrogates come out as (invalid) CESU-8 bytes."""
    return json.dumps(document, ensure_ascii=escaped).encode("utf-8", "surrogatepass")


def texts(value: object) -> Iterator[str]:
    """Every string in a decoded JSON value, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from texts(item)


def assert_storable_text(text: str) -> None:
    assert "\x00" not in text
    text.encode("utf-8")  # raises on a lone surrogate


def assert_storable(event: Event) -> None:
    """What raw.run_events, raw.runs and raw.stages will take without an error."""
    assert event.status in STATUSES
    assert event.run_key is not None or event.pipeline_id is not None
    for name in (event.run_key, event.pipeline_name, event.stage_name):
        if name is not None:
            assert 1 <= len(name) <= MAX_NAME_LENGTH
            assert_storable_text(name)
    assert event.event_time.utcoffset() == timedelta(0)
    assert event.pipeline_id is None or 1 <= event.pipeline_id <= BIGINT_MAX
    assert event.records_processed is None or 0 <= event.records_processed <= BIGINT_MAX
    assert 1 <= event.attempt <= INTEGER_MAX
    if event.error_message is not None:
        assert len(event.error_message.encode("utf-8")) <= ERROR_LIMIT_BYTES
        assert_storable_text(event.error_message)
    if event.attributes is not None:
        json.dumps(event.attributes, allow_nan=False)
        for text in texts(event.attributes):
            assert_storable_text(text)


def verdict(raw: bytes) -> Event | BadEventError:
    """parse_line's verdict; any exception but BadEventError fails the test."""
    try:
        event = parse_line(raw)
    except BadEventError as error:
        rejection = error
    else:
        assert_storable(event)
        return event
    assert rejection.reason
    # The reason is printed and stored as text in the quarantine.
    assert_storable_text(str(rejection))
    assert len(str(rejection)) <= MAX_REASON_LENGTH, str(rejection)[:200]
    return rejection


FUZZ = settings(max_examples=200, deadline=None)


@FUZZ
@given(raw=st.binary(max_size=300))
def test_arbitrary_bytes_get_a_verdict(raw: bytes) -> None:
    verdict(raw)


@FUZZ
@given(
    document=JSON_VALUES
    | st.dictionaries(KEYS, JSON_VALUES, max_size=8)
    | st.fixed_dictionaries({}, optional=dict.fromkeys(sorted(FIELDS), JSON_VALUES)),
    escaped=st.booleans(),
)
def test_json_documents_get_a_verdict(document: object, escaped: bool) -> None:
    verdict(encode(document, escaped=escaped))


@FUZZ
@given(
    base=valid_events(),
    field=st.sampled_from(sorted(FIELDS)) | HOSTILE_TEXT,
    value=st.just(MISSING) | JSON_VALUES,
)
def test_a_valid_event_with_one_field_changed_fails_only_on_that_field(
    base: dict[str, Any], field: str, value: object
) -> None:
    assert isinstance(verdict(encode(base)), Event)
    document = {key: item for key, item in base.items() if key != field}
    if value is not MISSING:
        document[field] = value

    result = verdict(encode(document))

    if isinstance(result, BadEventError):
        if field in FIELDS:
            assert result.field == field, str(result)
        else:
            assert result.reason == "unknown field", str(result)


@FUZZ
@given(base=valid_events(), data=st.data())
def test_a_valid_line_with_bytes_changed_gets_a_verdict(base: dict[str, Any], data: Any) -> None:
    raw = bytearray(encode(base, escaped=data.draw(st.booleans())))
    for _ in range(data.draw(st.integers(1, 3))):
        position = data.draw(st.integers(0, len(raw) - 1))
        change = data.draw(st.sampled_from(["delete", "insert", "replace"]))
        if change == "delete":
            del raw[position]
        else:
            byte = data.draw(st.integers(0, 255) | st.sampled_from(b'{}[]",:\\0'))
            raw[position : position + (change == "replace")] = bytes([byte])
    verdict(bytes(raw))


# ---- ingest against the database

BLANK_LINES = st.sampled_from([b"", b"   ", b"\t", b"\r"])
# At most 40 bytes: too short for any valid event, so garbage is always rejected.
GARBAGE_LINES = st.binary(min_size=1, max_size=40).filter(
    lambda raw: b"\n" not in raw and raw.strip() and not raw.endswith(b"\r")
)


@st.composite
def mutated_lines(draw: st.DrawFn) -> bytes:
    """A valid event broken for sure: one field bad, an unknown field, or the line cut short."""
    document = draw(valid_events())
    change = draw(st.sampled_from(["field", "unknown field", "cut"]))
    if change == "cut":
        raw = encode(document)
        return raw[: draw(st.integers(1, len(raw) - 1))]
    if change == "unknown field":
        keys = st.sampled_from(["colour", "a\x00b", "\ud800"]) | HOSTILE_TEXT
        document[draw(keys.filter(lambda key: key not in FIELDS))] = 1
    else:
        field = draw(st.sampled_from(sorted(BAD_VALUES)))
        value = draw(BAD_VALUES[field])
        document.pop(field, None)
        if value is not MISSING:
            document[field] = value
        if field == "run_key":  # else pipeline_id would still name the run
            document.pop("pipeline_id", None)
    return encode(document)


@st.composite
def bulk_files(draw: st.DrawFn) -> list[tuple[str, bytes, dict[str, Any] | None]]:
    """Lines of a bulk file: (kind, bytes, the event of a valid line)."""
    lines: list[tuple[str, bytes, dict[str, Any] | None]] = []
    for _ in range(draw(st.integers(1, 25))):
        kind = draw(
            st.sampled_from(["valid", "valid", "redelivery", "mutated", "garbage", "blank"])
        )
        valid = [document for _, _, document in lines if document is not None]
        if kind == "redelivery" and valid:
            first = draw(st.sampled_from(valid))
            document = {**first, "status": draw(st.sampled_from(STATUSES))}
            lines.append(("valid", encode(document), document))
        elif kind in {"valid", "redelivery"}:
            document = draw(valid_events())
            lines.append(("valid", encode(document, escaped=draw(st.booleans())), document))
        elif kind == "mutated":
            lines.append(("bad", draw(mutated_lines()), None))
        elif kind == "garbage":
            lines.append(("bad", draw(GARBAGE_LINES), None))
        else:
            lines.append(("blank", draw(BLANK_LINES), None))
    return lines


@settings(
    max_examples=25,
    deadline=None,
    # Each example loads a file: report a failing one unshrunk, its lines are few and short.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(lines=bulk_files(), batch_lines=st.sampled_from([1, 2, 3, 10_000]))
def test_ingest_accounts_for_every_line(
    db: Connection, lines: list[tuple[str, bytes, dict[str, Any] | None]], batch_lines: int
) -> None:
    db.execute("truncate raw.run_events, raw.stages, raw.runs, raw.quarantined_events")
    data = b"".join(raw + b"\n" for _, raw, _ in lines)
    first_delivery: dict[str, dict[str, Any]] = {}
    for _, _, document in lines:
        if document is not None:
            first_delivery.setdefault(str(uuid.UUID(document["event_id"])), document)
    bad = {number: raw for number, (kind, raw, _) in enumerate(lines, start=1) if kind == "bad"}
    valid_lines = sum(1 for kind, _, _ in lines if kind == "valid")

    result = ingest_stream(db, io.BytesIO(data), source="fuzz", batch_lines=batch_lines)

    counts = (result.accepted, result.duplicates, result.rejected)
    assert sum(counts) == sum(1 for kind, _, _ in lines if kind != "blank")
    assert counts == (len(first_delivery), valid_lines - len(first_delivery), len(bad))
    quarantined = query(db, "select line_number, raw_line from raw.quarantined_events")
    assert sorted((row["line_number"], bytes(row["raw_line"])) for row in quarantined) == sorted(
        bad.items()
    )
    stored = query(db, "select event_id, status from raw.run_events")
    assert {str(row["event_id"]): row["status"] for row in stored} == {
        event_id: document["status"] for event_id, document in first_delivery.items()
    }
