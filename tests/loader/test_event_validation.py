"""The contract's "One event" section: what `parse_event` and `parse_line` accept and refuse."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from loader.contract import derived_event_id
from loader.errors import BadEventError
from loader.events import parse_event, parse_line

T0 = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
VALID: dict[str, Any] = {
    "run_key": "flow-run-1",
    "pipeline_name": "daily_sales",
    "status": "running",
    "event_time": "2026-01-01T10:00:00Z",
}
ERROR_LIMIT = 8192
STATUSES = "pending, running, completed, failed"
BIGINT_MAX = 2**63 - 1
INTEGER_MAX = 2**31 - 1


def changed(**fields: Any) -> dict[str, Any]:
    """VALID with some fields replaced: each bad case breaks exactly one thing."""
    return {**VALID, **fields}


def without(*names: str) -> dict[str, Any]:
    return {key: value for key, value in VALID.items() if key not in names}


def nested(levels: int) -> dict[str, Any]:
    """An object `levels` objects deep."""
    value: dict[str, Any] = {"leaf": True}
    for _ in range(levels - 1):
        value = {"child": value}
    return value


def line(document: dict[str, Any] | str) -> bytes:
    return (document if isinstance(document, str) else json.dumps(document)).encode()


def uuid7_millis(value: uuid.UUID) -> int:
    return value.int >> 80


# (document given to parse_event, field named in BadEventError.field, part of the message)
BAD_EVENTS = [
    # status
    pytest.param(without("status"), "status", f"status: missing; expected one of {STATUSES}",
                 id="status-missing"),
    pytest.param(changed(status=None), "status", f"missing; expected one of {STATUSES}",
                 id="status-null"),
    pytest.param(changed(status="done"), "status", f"status: 'done' is not one of {STATUSES}",
                 id="status-unknown"),
    pytest.param(changed(status="RUNNING"), "status", f"'RUNNING' is not one of {STATUSES}",
                 id="status-wrong-case"),
    pytest.param(changed(status=1), "status", f"1 is not one of {STATUSES}",
                 id="status-number"),
    # event_time
    pytest.param(without("event_time"), "event_time",
                 "event_time: missing; an ISO 8601 timestamp with offset is required",
                 id="event_time-missing"),
    pytest.param(changed(event_time="2026-01-01T10:00:00"), "event_time",
                 "'2026-01-01T10:00:00' has no UTC offset", id="event_time-naive"),
    pytest.param(changed(event_time="2026-01-01 10:00"), "event_time", "has no UTC offset",
                 id="event_time-naive-space"),
    pytest.param(changed(event_time="2026-01-01"), "event_time", "'2026-01-01' has no UTC offset",
                 id="event_time-date-only"),
    pytest.param(changed(event_time=datetime(2026, 1, 1, 10)), "event_time", "has no UTC offset",
                 id="event_time-naive-datetime"),
    pytest.param(changed(event_time="yesterday"), "event_time",
                 "'yesterday' is not an ISO 8601 timestamp", id="event_time-not-iso"),
    pytest.param(changed(event_time="2026-13-01T10:00:00Z"), "event_time",
                 "is not an ISO 8601 timestamp", id="event_time-month-13"),
    pytest.param(changed(event_time=1767261600), "event_time",
                 "expected an ISO 8601 string, got number", id="event_time-number"),
    pytest.param(changed(event_time="0001-01-01T00:00:00+01:00"), "event_time",
                 "out of range in UTC", id="event_time-out-of-range"),
    # run_key / pipeline_id: one of them is required
    pytest.param(without("run_key"), "run_key", "one of run_key or pipeline_id is required",
                 id="run_key-and-pipeline_id-missing"),
    pytest.param(changed(run_key=None), "run_key", "one of run_key or pipeline_id is required",
                 id="run_key-null"),
    pytest.param(changed(run_key=17), "run_key", "run_key: expected a string, got number",
                 id="run_key-number"),
    pytest.param(changed(run_key=""), "run_key", "must be 1 to 200 characters, got 0",
                 id="run_key-0-chars"),
    pytest.param(changed(run_key="r" * 201), "run_key", "must be 1 to 200 characters, got 201",
                 id="run_key-201-chars"),
    pytest.param(changed(run_key="run\x00key"), "run_key", "run_key: contains a NUL character",
                 id="run_key-nul"),
    pytest.param(changed(pipeline_id="7"), "pipeline_id",
                 'pipeline_id: expected an integer, got string "7"', id="pipeline_id-string"),
    pytest.param(changed(pipeline_id=7.0), "pipeline_id", "expected an integer, got number 7.0",
                 id="pipeline_id-float"),
    pytest.param(changed(pipeline_id=True), "pipeline_id",
                 "expected an integer, got boolean true", id="pipeline_id-bool"),
    pytest.param(changed(pipeline_id=0), "pipeline_id",
                 f"0 is out of range (1 to {BIGINT_MAX})", id="pipeline_id-0"),
    pytest.param(changed(pipeline_id=-3), "pipeline_id", "-3 is out of range",
                 id="pipeline_id-negative"),
    pytest.param(changed(pipeline_id=BIGINT_MAX + 1), "pipeline_id", "is out of range",
                 id="pipeline_id-over-bigint"),
    # pipeline_name
    pytest.param(changed(pipeline_name=["daily"]), "pipeline_name",
                 "pipeline_name: expected a string, got array", id="pipeline_name-array"),
    pytest.param(changed(pipeline_name=""), "pipeline_name", "must be 1 to 200 characters, got 0",
                 id="pipeline_name-0-chars"),
    pytest.param(changed(pipeline_name="p" * 201), "pipeline_name",
                 "must be 1 to 200 characters, got 201", id="pipeline_name-201-chars"),
    pytest.param(changed(pipeline_name="\x00"), "pipeline_name", "contains a NUL character",
                 id="pipeline_name-nul"),
    # stage_name
    pytest.param(changed(stage_name=3), "stage_name", "stage_name: expected a string, got number",
                 id="stage_name-number"),
    pytest.param(changed(stage_name=""), "stage_name", "must be 1 to 200 characters, got 0",
                 id="stage_name-0-chars"),
    pytest.param(changed(stage_name="s" * 201), "stage_name",
                 "must be 1 to 200 characters, got 201", id="stage_name-201-chars"),
    pytest.param(changed(stage_name="load\x00"), "stage_name", "contains a NUL character",
                 id="stage_name-nul"),
    # records_processed
    pytest.param(changed(records_processed=-1), "records_processed",
                 f"records_processed: -1 is out of range (0 to {BIGINT_MAX})",
                 id="records-negative"),
    pytest.param(changed(records_processed=True), "records_processed",
                 "expected an integer, got boolean true", id="records-bool"),
    pytest.param(changed(records_processed=False), "records_processed",
                 "expected an integer, got boolean false", id="records-bool-false"),
    pytest.param(changed(records_processed=10.0), "records_processed",
                 "expected an integer, got number 10.0", id="records-whole-float"),
    pytest.param(changed(records_processed=2.5), "records_processed",
                 "expected an integer, got number 2.5", id="records-float"),
    pytest.param(changed(records_processed="10"), "records_processed",
                 'expected an integer, got string "10"', id="records-string"),
    pytest.param(changed(records_processed=BIGINT_MAX + 1), "records_processed",
                 "is out of range", id="records-over-bigint"),
    # attempt
    pytest.param(changed(attempt=0), "attempt",
                 f"attempt: 0 is out of range (1 to {INTEGER_MAX})", id="attempt-0"),
    pytest.param(changed(attempt=-1), "attempt", "-1 is out of range", id="attempt-negative"),
    pytest.param(changed(attempt=INTEGER_MAX + 1), "attempt", "is out of range",
                 id="attempt-over-integer"),
    pytest.param(changed(attempt=True), "attempt", "expected an integer, got boolean true",
                 id="attempt-bool"),
    pytest.param(changed(attempt=2.0), "attempt", "expected an integer, got number 2.0",
                 id="attempt-float"),
    pytest.param(changed(attempt="2"), "attempt", "expected an integer, got string",
                 id="attempt-string"),
    # error_message
    pytest.param(changed(error_message=404), "error_message",
                 "error_message: expected a string, got number", id="error_message-number"),
    pytest.param(changed(error_message={"text": "boom"}), "error_message",
                 "expected a string, got object", id="error_message-object"),
    pytest.param(changed(error_message="bo\x00om"), "error_message", "contains a NUL character",
                 id="error_message-nul"),
    # attributes
    pytest.param(changed(attributes="host=a"), "attributes",
                 "attributes: expected a JSON object, got string", id="attributes-string"),
    pytest.param(changed(attributes=["host"]), "attributes", "expected a JSON object, got array",
                 id="attributes-array"),
    pytest.param(changed(attributes=5), "attributes", "expected a JSON object, got number",
                 id="attributes-number"),
    pytest.param(changed(attributes=nested(100)), "attributes", "nested deeper than 64 levels",
                 id="attributes-too-deep"),
    pytest.param(changed(attributes={"list": [[[[[[[[nested(70)]]]]]]]]}), "attributes",
                 "nested deeper than 64 levels", id="attributes-too-deep-in-lists"),
    pytest.param(changed(attributes={"host": "a\x00b"}), "attributes",
                 "contains a NUL character", id="attributes-nul-in-value"),
    pytest.param(changed(attributes={"h\x00st": "a"}), "attributes",
                 "contains a NUL character", id="attributes-nul-in-key"),
    pytest.param(changed(attributes={"ratio": float("nan")}), "attributes",
                 "NaN and infinity are not JSON", id="attributes-nan"),
    pytest.param(changed(attributes={"ratio": [float("inf")]}), "attributes",
                 "NaN and infinity are not JSON", id="attributes-infinity"),
    pytest.param(changed(attributes={"when": T0}), "attributes", "datetime is not a JSON value",
                 id="attributes-not-json-value"),
    # event_id
    pytest.param(changed(event_id=12), "event_id", "event_id: expected a UUID string, got number",
                 id="event_id-number"),
    pytest.param(changed(event_id="not-a-uuid"), "event_id", "'not-a-uuid' is not a UUID",
                 id="event_id-not-uuid"),
    # anything else
    pytest.param(changed(colour="red"), "colour", "colour: unknown field", id="unknown-field"),
    pytest.param(changed(zeta=1, alpha=2), "alpha", "alpha: unknown field",
                 id="unknown-fields-first-in-order"),
    pytest.param(changed(runKey="r"), "runKey", "unknown field", id="unknown-field-camel-case"),
]  # fmt: skip


@pytest.mark.parametrize(("document", "field", "message"), BAD_EVENTS)
def test_parse_event_rejects(document: Any, field: str, message: str) -> None:
    with pytest.raises(BadEventError) as caught:
        parse_event(document)
    assert caught.value.field == field
    assert message in str(caught.value)


def spelled_in_json(case: Any) -> bool:
    try:
        json.dumps(case.values[0], allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


@pytest.mark.parametrize(
    ("document", "field", "message"), [case for case in BAD_EVENTS if spelled_in_json(case)]
)
def test_parse_line_rejects_the_same_events(document: Any, field: str, message: str) -> None:
    """A bulk file line must get the same verdict as the API's mapping."""
    with pytest.raises(BadEventError) as caught:
        parse_line(line(document))
    assert caught.value.field == field
    assert message in str(caught.value)


# (raw line given to parse_line, part of the message): line-level errors name no field
BAD_LINES = [
    pytest.param(b'{"status": ', "not valid JSON", id="truncated-json"),
    pytest.param(b'{"status": "running",}', "not valid JSON", id="trailing-comma"),
    pytest.param(b"status=running", "not valid JSON", id="not-json"),
    pytest.param(b'{"run_key": "r\xff"}', "not valid UTF-8 (byte 14)", id="invalid-utf8"),
    pytest.param(b'{"run_key": "\xc3"}', "not valid UTF-8", id="truncated-utf8-sequence"),
    pytest.param(b"\xef\xbb\xbf" + line(VALID), "not valid JSON", id="utf8-bom"),
    pytest.param(b"[1, 2]", "expected a JSON object, got array", id="array"),
    pytest.param(b'"running"', "expected a JSON object, got string", id="string"),
    pytest.param(b"42", "expected a JSON object, got number", id="number"),
    pytest.param(b"null", "expected a JSON object, got null", id="null"),
    pytest.param(b"true", "expected a JSON object, got boolean", id="boolean"),
    pytest.param(b"[" * 100_000, "JSON nested too deeply", id="hostile-nesting"),
]


@pytest.mark.parametrize(("raw", "message"), BAD_LINES)
def test_parse_line_rejects_lines(raw: bytes, message: str) -> None:
    with pytest.raises(BadEventError) as caught:
        parse_line(raw)
    assert caught.value.field is None
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        pytest.param(
            line(
                '{"run_key": "r", "pipeline_name": "\\ud800", "status": "running", '
                '"event_time": "2026-01-01T10:00:00Z"}'
            ),
            "pipeline_name",
            id="name",
        ),
        pytest.param(
            line(
                '{"run_key": "r", "status": "failed", "error_message": "boom \\udc00", '
                '"event_time": "2026-01-01T10:00:00Z"}'
            ),
            "error_message",
            id="error_message",
        ),
        pytest.param(
            line(
                '{"run_key": "r", "status": "running", "attributes": {"host": "\\ud800"}, '
                '"event_time": "2026-01-01T10:00:00Z"}'
            ),
            "attributes",
            id="attributes",
        ),
    ],
)
def test_lone_surrogate_escape_is_a_bad_event(raw: bytes, field: str) -> None:
    """JSON allows the escape, but the string is not Unicode: PostgreSQL cannot store it."""
    with pytest.raises(BadEventError) as caught:
        parse_line(raw)
    assert caught.value.field == field


def test_integer_too_long_for_python_is_a_bad_event_not_a_crash() -> None:
    """Python refuses to parse ints over 4300 digits; the line must still get a verdict."""
    raw = line(VALID)[:-1] + b', "records_processed": ' + b"9" * 5000 + b"}"
    with pytest.raises(BadEventError):
        parse_line(raw)


@pytest.mark.parametrize(
    ("event_time", "expected"),
    [
        ("2026-01-01T10:00:00Z", T0),
        ("2026-01-01T10:00:00+00:00", T0),
        ("2026-01-01T12:00:00+02:00", T0),
        ("2026-01-01T04:30:00-05:30", T0),
        ("2026-01-01T00:30:00.250+02:00", datetime(2025, 12, 31, 22, 30, 0, 250_000, tzinfo=UTC)),
        (datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=2))), T0),
    ],
)
def test_event_time_is_normalized_to_utc(event_time: Any, expected: datetime) -> None:
    parsed = parse_event(changed(event_time=event_time)).event_time
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)
    assert parsed.tzinfo == UTC


def test_valid_line_keeps_every_field() -> None:
    event_id = uuid.uuid4()
    document = {
        "event_id": str(event_id),
        "run_key": "flow-run-1",
        "pipeline_id": 7,
        "pipeline_name": "daily_sales",
        "stage_name": "extract",
        "status": "failed",
        "event_time": "2026-01-01T11:00:00+01:00",
        "records_processed": 0,
        "error_message": "ValueError: boom",
        "attempt": 3,
        "attributes": {"host": "worker-1", "tags": ["a", None, 1.5, False]},
    }
    event = parse_line(line(document))
    assert event.event_id == event_id
    assert (event.run_key, event.pipeline_id, event.pipeline_name) == (
        "flow-run-1",
        7,
        "daily_sales",
    )
    assert (event.stage_name, event.status, event.event_time) == ("extract", "failed", T0)
    assert (event.records_processed, event.error_message, event.attempt) == (
        0,
        "ValueError: boom",
        3,
    )
    assert event.attributes == document["attributes"]


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(changed(run_key="r"), id="run_key-1-char"),
        pytest.param(changed(run_key="r" * 200), id="run_key-200-chars"),
        pytest.param(changed(pipeline_name="é" * 200), id="pipeline_name-200-multibyte-chars"),
        pytest.param(changed(stage_name="s" * 200), id="stage_name-200-chars"),
        pytest.param(changed(stage_name=None), id="stage_name-null"),
        pytest.param({**without("run_key"), "pipeline_id": 1}, id="pipeline_id-only"),
        pytest.param(changed(pipeline_id=BIGINT_MAX), id="pipeline_id-bigint-max"),
        pytest.param(changed(records_processed=0), id="records-0"),
        pytest.param(changed(attempt=1), id="attempt-1"),
        pytest.param(changed(attempt=INTEGER_MAX), id="attempt-integer-max"),
        pytest.param(changed(attributes={}), id="attributes-empty"),
        pytest.param(changed(attributes=nested(20)), id="attributes-nested-20"),
        pytest.param(changed(error_message=""), id="error_message-empty"),
        pytest.param(changed(event_id=None), id="event_id-null"),
    ],
)
def test_parse_event_accepts(document: dict[str, Any]) -> None:
    event = parse_event(document)
    for name, value in document.items():
        if name not in {"event_id", "event_time"}:
            assert getattr(event, name) == value


def test_attempt_defaults_to_1() -> None:
    assert parse_event(VALID).attempt == 1
    assert parse_event(changed(attempt=None)).attempt == 1


def test_event_id_is_normalized() -> None:
    event_id = uuid.uuid4()
    spelled = "{" + str(event_id).upper() + "}"
    assert parse_event(changed(event_id=spelled)).event_id == event_id


@pytest.mark.parametrize(
    ("message", "kept_bytes"),
    [
        pytest.param("x" * ERROR_LIMIT, ERROR_LIMIT, id="ascii-at-limit"),
        pytest.param("x" * (ERROR_LIMIT + 1), ERROR_LIMIT, id="ascii-one-over"),
        pytest.param("x" * 50_000, ERROR_LIMIT, id="ascii-far-over"),
        pytest.param("a" + "é" * 5000, ERROR_LIMIT - 1, id="2-byte-char-across-limit"),
        pytest.param("é" * 5000, ERROR_LIMIT, id="2-byte-char-ends-at-limit"),
        pytest.param("ab" + "€" * 3000, ERROR_LIMIT, id="3-byte-char-ends-at-limit"),
        pytest.param("a" + "€" * 3000, ERROR_LIMIT - 1, id="3-byte-char-1-byte-over"),
        pytest.param("€" * 3000, ERROR_LIMIT - 2, id="3-byte-char-2-bytes-over"),
        pytest.param("a" + "😀" * 3000, ERROR_LIMIT - 3, id="4-byte-char-across-limit"),
    ],
)
def test_error_message_is_truncated_to_8_kib_of_utf8(message: str, kept_bytes: int) -> None:
    event = parse_event(changed(status="failed", error_message=message))
    assert event.error_message is not None
    assert event.error_message.encode("utf-8") == message.encode("utf-8")[:kept_bytes]
    if len(message.encode("utf-8")) > ERROR_LIMIT:
        assert event.attributes == {"error_message_full": message}
    else:
        assert event.attributes is None


def test_truncated_error_message_keeps_other_attributes() -> None:
    attributes = {"host": "worker-1"}
    message = "Traceback\n" * 2000
    event = parse_line(line(changed(status="failed", error_message=message, attributes=attributes)))
    assert event.attributes == {"host": "worker-1", "error_message_full": message}
    assert event.error_message == message[:ERROR_LIMIT]


def test_missing_event_id_is_generated_as_uuid7() -> None:
    before = time.time_ns() // 1_000_000
    first = parse_event(VALID).event_id
    second = parse_event(VALID).event_id
    after = time.time_ns() // 1_000_000
    assert first != second
    for generated in (first, second):
        assert generated.version == 7
        assert generated.variant == uuid.RFC_4122
        assert before <= uuid7_millis(generated) <= after
    assert uuid7_millis(first) <= uuid7_millis(second)


def test_generated_event_ids_sort_in_time_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """A clock that moves 1 ms per call makes the ordering deterministic."""
    start_ns = time.time_ns()
    ticks = iter(range(50))
    monkeypatch.setattr(time, "time_ns", lambda: start_ns + next(ticks) * 1_000_000)
    generated = [parse_event(VALID).event_id for _ in range(50)]
    assert sorted(generated) == generated
    assert sorted(str(value) for value in generated) == [str(value) for value in generated]


def test_derived_event_id_is_deterministic() -> None:
    first = derived_event_id("run-1", "COMPLETE", "2026-01-01T10:00:00Z")
    assert first == derived_event_id("run-1", "COMPLETE", "2026-01-01T10:00:00Z")
    assert first.version == 5
    assert first != derived_event_id("run-1", "START", "2026-01-01T10:00:00Z")
    assert first != derived_event_id("COMPLETE", "run-1", "2026-01-01T10:00:00Z")
    assert derived_event_id("ab", "c") != derived_event_id("a", "bc")
