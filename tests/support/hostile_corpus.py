"""Hostile lines for a bulk file, each with the verdict the contract gives it.

A table, not a text file: some lines are invalid UTF-8, hold NUL bytes or weigh half a
megabyte, so each case says how its bytes are built. Every case is one line (no b"\\n" in it):

- QUARANTINED: rejected; `reason` is a part of the quarantine reason, naming the field
  (or, for a line that is no JSON object at all, what is wrong with the line);
- ACCEPTED: stored; `stored` is its row in raw.run_events joined with its run and stage;
- DUPLICATE: a valid redelivery of an earlier case's event_id: counted, not stored;
- PARKED: valid, of a run nothing has named yet: kept whole in raw.parked_events;
- SKIPPED: a blank line; ingest skips it without counting it (it keeps its line number).

Valid lines name the run GOOD_RUN without a pipeline_name: the good lines that the tests
interleave with these cases register it (the first line of the file is a case that is
rejected, so a good line is always the first to name the run).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

QUARANTINED, ACCEPTED, DUPLICATE, SKIPPED = "quarantined", "accepted", "duplicate", "skipped"
PARKED = "parked"

GOOD_RUN = "hostile-run"
GOOD_PIPELINE = "hostile_pipeline"
T0 = "2026-01-01T10:00:00Z"
SQL = "'); drop table raw.run_events; --"
ERROR_LIMIT_BYTES = 8 * 1024
# Large, yet under the line cap (LEDGER_MAX_LINE_BYTES, 1 MiB; tests/loader/test_line_limits.py
# covers lines over it).
HALF_MB = 2**19
BIGINT_MAX = 2**63 - 1
INTEGER_MAX = 2**31 - 1
STATUSES = "one of pending, running, completed, failed"
_NAMESPACE = uuid.UUID("0b4c8f3e-2d5a-4c61-9a57-6f1e2d3c4b5a")
_MISSING = object()
"""A field value that removes the field from the document."""


@dataclass(frozen=True)
class Case:
    """One hostile line and what ingest must make of it."""

    name: str
    raw: bytes
    outcome: str
    reason: str = ""
    stored: Mapping[str, Any] | None = None


def event_id(name: str) -> str:
    """The event_id of a case: fixed by its name, so its row can be found."""
    return str(uuid.uuid5(_NAMESPACE, name))


def event(name: str, **fields: Any) -> dict[str, Any]:
    """A valid event of GOOD_RUN with some fields replaced (or removed with _MISSING)."""
    document = {"event_id": event_id(name), "run_key": GOOD_RUN, "status": "running"}
    document["event_time"] = T0
    document.update(fields)
    return {key: value for key, value in document.items() if value is not _MISSING}


def encode(document: object, *, escaped: bool = False) -> bytes:
    """A document as one line of UTF-8 JSON; `escaped` spells non-ASCII as \\u escapes.

    Only escaped JSON can carry a lone surrogate (as `\\ud800`).
    """
    return json.dumps(document, ensure_ascii=escaped).encode()


def bad(name: str, raw: bytes | Mapping[str, Any], reason: str) -> Case:
    """A quarantined line: raw bytes, or fields changed in a valid event of GOOD_RUN."""
    line = raw if isinstance(raw, bytes) else encode(event(name, **raw), escaped=True)
    return Case(name, line, QUARANTINED, reason=reason)


def accepted(
    name: str,
    fields: Mapping[str, Any],
    *,
    escaped: bool = False,
    line: bytes | None = None,
    **row: Any,
) -> Case:
    """A stored line: fields changed in a valid event; `row` overrides the expected row.

    `line` spells the event's bytes when JSON can say `fields` in more than one way.
    """
    document = event(name, **fields)
    stored = {
        "event_id": document.get("event_id"),
        "run_key": document["run_key"],
        "pipeline_name": document.get("pipeline_name", GOOD_PIPELINE),
        "stage_name": document.get("stage_name"),
        "status": document["status"],
        "event_time": datetime.fromisoformat(document["event_time"]).astimezone(UTC),
        "records_processed": document.get("records_processed"),
        "error_message": document.get("error_message"),
        "attempt": document.get("attempt", 1),
        "run_attempt": document.get("run_attempt", 1),
        "attributes": document.get("attributes"),
    }
    raw = encode(document, escaped=escaped) if line is None else line
    return Case(name, raw, ACCEPTED, stored={**stored, **row})


def nested(levels: int) -> dict[str, Any]:
    """An object `levels` objects deep, with a scalar in the innermost one."""
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(levels - 1):
        value = {"child": value}
    return value


def valid_line(name: str, **fields: Any) -> bytes:
    return encode(event(name, **fields))


def _half_mb_error() -> str:
    unit = "Traceback: ValueError 'é€😀'; drop table raw.run_events; -- \\ \t\n"
    return unit * (HALF_MB // len(unit.encode()))


BIG_ERROR = _half_mb_error()
SQL_RUN = f"sql-run {SQL}"
PLACEHOLDER_RUN = "%s %(run_key)s {0} $1 :name ?"
BOM = b"\xef\xbb\xbf"

CASES: tuple[Case, ...] = (
    # A BOM opens the file, as Windows tools write it; it is not part of JSON.
    bad("bom-at-file-start", BOM + valid_line("bom-at-file-start"), "Unexpected UTF-8 BOM"),
    # ---- not JSON at all
    bad("json-truncated", b'{"run_key": "r", "status": ', "not valid JSON (Expecting value"),
    bad("json-trailing-comma", valid_line("json-trailing-comma")[:-1] + b",}", "not valid JSON"),
    bad("json-single-quotes", b"{'run_key': 'r', 'status': 'running'}", "not valid JSON"),
    bad("json-unquoted-keys", b'{run_key: "r", status: "running"}', "not valid JSON"),
    bad("json-comment", valid_line("json-comment") + b" // sent by cron", "Extra data"),
    bad("json-two-objects", valid_line("two-a") + valid_line("two-b"), "Extra data"),
    bad("json-python-literals", b'{"run_key": "r", "stage_name": None}', "not valid JSON"),
    bad("json-leading-zeros", b'{"records_processed": 007}', "not valid JSON"),
    bad("json-hex-number", b'{"records_processed": 0x10}', "not valid JSON"),
    bad("json-plus-sign", b'{"records_processed": +1}', "not valid JSON"),
    bad("json-unterminated-string", b'{"run_key": "r', "Unterminated string"),
    bad("json-invalid-escape", b'{"run_key": "\\x41"}', "Invalid \\escape"),
    bad("json-raw-tab-in-string", b'{"run_key": "a\tb"}', "Invalid control character"),
    bad("json-lone-brace", b"{", "not valid JSON"),
    bad("json-closing-brace", b"}", "not valid JSON"),
    bad("json-integer-too-long", b'{"attempt": ' + b"7" * 5000 + b"}", "not valid JSON (Exceeds"),
    bad("json-nested-100k", b"[" * 100_000, "JSON nested too deeply"),
    bad("json-nested-100k-in-field", b'{"attributes": ' + b"[" * 100_000, "nested too deeply"),
    # ---- not UTF-8
    bad("utf8-stray-continuation-byte", b'{"run_key": "\x80"}', "not valid UTF-8 (byte 13)"),
    bad("utf8-overlong-slash", b'{"run_key": "\xc0\xaf"}', "not valid UTF-8 (byte 13)"),
    bad("utf8-encoded-surrogate", b'{"run_key": "\xed\xa0\x80"}', "not valid UTF-8 (byte 13)"),
    bad("utf8-above-u10ffff", b'{"run_key": "\xf4\x90\x80\x80"}', "not valid UTF-8 (byte 13)"),
    bad("utf8-truncated-at-end", valid_line("utf8-cut") + b"\xe2\x82", "not valid UTF-8"),
    bad("latin-1", valid_line("latin-1", stage_name="é").replace(b"\xc3\xa9", b"\xe9"), "UTF-8"),
    bad("utf-16", '{"run_key": "r"}'.encode("utf-16"), "not valid UTF-8 (byte 0)"),
    # ---- NUL: raw bytes break the JSON, escaped ones the field PostgreSQL cannot store
    bad("nul-raw-line", b"\x00", "not valid JSON"),
    bad("nul-raw-in-string", b'{"run_key": "a\x00b"}', "Invalid control character"),
    bad("nul-raw-after-object", valid_line("nul-after") + b"\x00", "Extra data"),
    bad("nul-run_key", {"run_key": "run\x00"}, "run_key: contains a NUL character"),
    bad("nul-pipeline_name", {"pipeline_name": "\x00"}, "pipeline_name: contains a NUL"),
    bad("nul-stage_name", {"stage_name": "load\x00"}, "stage_name: contains a NUL character"),
    bad("nul-error_message", {"error_message": "bo\x00om"}, "error_message: contains a NUL"),
    bad("nul-attributes-value", {"attributes": {"h": "\x00"}}, "attributes: contains a NUL"),
    bad("nul-attributes-key", {"attributes": {"\x00": 1}}, "attributes: contains a NUL"),
    bad("nul-status", {"status": "running\x00"}, f"status: 'running\\x00' is not {STATUSES}"),
    bad("nul-event_time", {"event_time": "\x00"}, "event_time: '\\x00' is not an ISO 8601"),
    bad("nul-event_id", {"event_id": "\x00"}, "event_id: '\\x00' is not a UUID"),
    bad("nul-unknown-field", {"a\x00b": 1}, "'a\\x00b': unknown field"),
    # ---- lone UTF-16 surrogates: legal JSON escapes, but no Unicode text
    bad("surrogate-run_key", {"run_key": "\ud800"}, "run_key: contains an unpaired UTF-16"),
    bad("surrogate-stage_name", {"stage_name": "x\udfff"}, "stage_name: contains an unpaired"),
    bad("surrogate-reversed-pair", {"pipeline_name": "\ude00\ud83d"}, "pipeline_name: contains"),
    bad("surrogate-attributes-key", {"attributes": {"\udc00": 1}}, "attributes: contains an"),
    bad("surrogate-status", {"status": "\ud800"}, f"status: '\\ud800' is not {STATUSES}"),
    bad("surrogate-unknown-field", {"\ud800": 1}, "'\\ud800': unknown field"),
    accepted("surrogate-pair-is-one-emoji", {"stage_name": "\ud83d\ude00"}, escaped=True,
             stage_name="😀"),
    # ---- event_id
    bad("event_id-number", {"event_id": 12}, "event_id: expected a UUID string, got number"),
    bad("event_id-array", {"event_id": [event_id("x")]}, "event_id: expected a UUID string"),
    bad("event_id-empty", {"event_id": ""}, "event_id: '' is not a UUID"),
    bad("event_id-33-hex-digits", {"event_id": "f" * 33}, "event_id: 'fffff"),
    accepted("event_id-missing-is-generated", {"event_id": _MISSING, "stage_name": "no-id"},
             event_id=None),
    # ---- run_key and pipeline_id
    bad("run_key-and-pipeline_id-missing", {"run_key": _MISSING}, "run_key: one of run_key or"),
    bad("run_key-null", {"run_key": None}, "run_key: one of run_key or pipeline_id is required"),
    bad("run_key-number", {"run_key": 17}, "run_key: expected a string, got number"),
    bad("run_key-empty", {"run_key": ""}, "run_key: must be 1 to 200 characters, got 0"),
    bad("run_key-201-chars", {"run_key": "r" * 201}, "run_key: must be 1 to 200 characters"),
    bad("run_key-half-mb", {"run_key": "r" * HALF_MB}, f"run_key: must be 1 to 200 characters, "
        f"got {HALF_MB}"),
    bad("pipeline_id-string", {"pipeline_id": "1"}, 'pipeline_id: expected an integer, got str'),
    bad("pipeline_id-float", {"pipeline_id": 1.5}, "pipeline_id: expected an integer, got num"),
    bad("pipeline_id-zero", {"pipeline_id": 0}, "pipeline_id: 0 is out of range"),
    bad("pipeline_id-over-bigint", {"pipeline_id": BIGINT_MAX + 1}, "pipeline_id: 92233720368"),
    bad("pipeline_id-unknown", {"run_key": _MISSING, "pipeline_id": 987654321},
        "pipeline_id: 987654321 is not a known run id"),
    bad("pipeline_id-given-with-a-new-run_key",
        {"run_key": "new-run-with-id", "pipeline_name": "p", "pipeline_id": 1},
        "pipeline_id: 1 does not match run_key 'new-run-with-id', a new run"),
    # ---- pipeline_name
    bad("pipeline_name-array", {"pipeline_name": [GOOD_PIPELINE]}, "pipeline_name: expected a"),
    bad("pipeline_name-empty", {"pipeline_name": ""}, "pipeline_name: must be 1 to 200"),
    bad("pipeline_name-201-emoji", {"run_key": "emoji-run", "pipeline_name": "😀" * 201},
        "pipeline_name: must be 1 to 200 characters, got 201"),
    accepted("pipeline_name-200-emoji", {"run_key": "emoji-run", "pipeline_name": "😀" * 200}),
    Case("pipeline_name-missing-for-a-new-run",
         encode(event("pipeline_name-missing-for-a-new-run", run_key="never-named"), escaped=True),
         PARKED),
    bad("pipeline_name-differs-and-looks-like-sql", {"pipeline_name": SQL},
        "differs from 'hostile_pipeline', the name this run was registered with"),
    # ---- stage_name
    bad("stage_name-number", {"stage_name": 3}, "stage_name: expected a string, got number"),
    bad("stage_name-object", {"stage_name": {"name": "x"}}, "stage_name: expected a string"),
    bad("stage_name-empty", {"stage_name": ""}, "stage_name: must be 1 to 200 characters"),
    bad("stage_name-201-chars", {"stage_name": "s" * 201}, "stage_name: must be 1 to 200"),
    # ---- status
    bad("status-missing", {"status": _MISSING}, f"status: missing; expected {STATUSES}"),
    bad("status-null", {"status": None}, "status: missing"),
    bad("status-unknown", {"status": "done"}, f"status: 'done' is not {STATUSES}"),
    bad("status-upper-case", {"status": "FAILED"}, "status: 'FAILED' is not"),
    bad("status-trailing-space", {"status": "running "}, "status: 'running ' is not"),
    bad("status-array", {"status": ["running"]}, "status: ['running'] is not"),
    bad("status-boolean", {"status": True}, "status: True is not"),
    bad("status-looks-like-sql", {"status": SQL}, "status: \"'); drop table raw.run_events"),
    # ---- event_time: ISO 8601 with an offset, in the range of a UTC datetime
    bad("event_time-missing", {"event_time": _MISSING}, "event_time: missing"),
    bad("event_time-naive", {"event_time": "2026-01-01T10:00:00"}, "event_time: '2026-01-01T1"
        "0:00:00' has no UTC offset"),
    bad("event_time-date-only", {"event_time": "2026-01-01"}, "event_time: '2026-01-01' has no"),
    bad("event_time-not-iso", {"event_time": "Jan 1 2026"}, "event_time: 'Jan 1 2026' is not"),
    bad("event_time-epoch-number", {"event_time": 1767261600}, "event_time: expected an ISO"),
    bad("event_time-year-0", {"event_time": "0000-01-01T00:00:00Z"}, "event_time: '0000-01-01"),
    bad("event_time-year-10000", {"event_time": "10000-01-01T00:00:00Z"}, "event_time: '10000"),
    bad("event_time-year-1-east-of-utc", {"event_time": "0001-01-01T00:00:00+01:00"},
        "event_time: '0001-01-01T00:00:00+01:00' is out of range in UTC"),
    bad("event_time-year-9999-west-of-utc", {"event_time": "9999-12-31T23:59:59-01:00"},
        "event_time: '9999-12-31T23:59:59-01:00' is out of range in UTC"),
    bad("event_time-leap-second", {"event_time": "2026-12-31T23:59:60Z"}, "event_time: '2026-1"),
    bad("event_time-fullwidth-digits", {"event_time": "\uff12\uff10\uff12\uff16-01-01T10:00Z"},
        "event_time: '\uff12\uff10\uff12\uff16-01-01T10:00Z' is not an ISO 8601 timestamp"),
    # The contract asks for an offset and nothing more: the first and last instants a UTC
    # timestamp can spell are events like any other (and PostgreSQL's timestamptz holds them).
    accepted("event_time-year-1", {"event_time": "0001-01-01T00:00:00Z", "stage_name": "y1"}),
    accepted("event_time-year-9999",
             {"event_time": "9999-12-31T23:59:59.999999Z", "stage_name": "y9999"}),
    accepted("event_time-offset-plus-14", {"event_time": "2026-01-02T00:00:00+14:00"}),
    # ---- records_processed: an integer from 0 to the bigint maximum
    bad("records-negative", {"records_processed": -1}, "records_processed: -1 is out of range"),
    bad("records-float", {"records_processed": 2.5}, "records_processed: expected an integer, "
        "got number 2.5"),
    bad("records-exponent", valid_line("records-exponent")[:-1] + b', "records_processed": 1e3}',
        "records_processed: expected an integer, got number 1000.0"),
    bad("records-negative-float-zero", {"records_processed": -0.0}, "records_processed: expect"),
    bad("records-true", {"records_processed": True}, "records_processed: expected an integer, "
        "got boolean true"),
    bad("records-string", {"records_processed": "12"}, 'records_processed: expected an integer'),
    bad("records-over-bigint", {"records_processed": BIGINT_MAX + 1},
        f"records_processed: {BIGINT_MAX + 1} is out of range (0 to {BIGINT_MAX})"),
    bad("records-4000-digits", {"records_processed": 10**3999},
        f"records_processed: a {(10**3999).bit_length()}-bit integer is out of range"),
    bad("records-nan", valid_line("records-nan")[:-1] + b', "records_processed": NaN}',
        "records_processed: expected an integer, got number NaN"),
    bad("records-infinity", valid_line("records-inf")[:-1] + b', "records_processed": 1e999}',
        "records_processed: expected an integer, got number Infinity"),
    accepted("records-minus-zero", {"records_processed": 0, "stage_name": "-0"},
             line=valid_line("records-minus-zero", stage_name="-0")[:-1]
             + b', "records_processed": -0}'),
    accepted("records-bigint-max", {"records_processed": BIGINT_MAX}),
    # ---- error_message: a string, stored up to 8 KiB, the full text in attributes
    bad("error_message-number", {"error_message": 404}, "error_message: expected a string"),
    bad("error_message-array", {"error_message": ["boom"]}, "error_message: expected a string"),
    accepted("error_message-half-mb", {"status": "failed", "error_message": BIG_ERROR},
             error_message=BIG_ERROR.encode()[:ERROR_LIMIT_BYTES].decode("utf-8", "ignore"),
             attributes={"error_message_full": BIG_ERROR}),
    # ---- attempt: an integer from 1 to the integer maximum
    bad("attempt-zero", {"attempt": 0}, f"attempt: 0 is out of range (1 to {INTEGER_MAX})"),
    bad("attempt-negative", {"attempt": -2}, "attempt: -2 is out of range"),
    bad("attempt-over-integer", {"attempt": INTEGER_MAX + 1}, "attempt: 2147483648 is out of"),
    bad("attempt-float", {"attempt": 1.5}, "attempt: expected an integer, got number 1.5"),
    bad("attempt-boolean", {"attempt": False}, "attempt: expected an integer, got boolean"),
    bad("attempt-string", {"attempt": "2"}, "attempt: expected an integer, got string"),
    accepted("attempt-integer-max", {"attempt": INTEGER_MAX, "stage_name": "retried"}),
    # ---- run_attempt: an integer from 1 to the integer maximum, on any event
    bad("run_attempt-zero", {"run_attempt": 0},
        f"run_attempt: 0 is out of range (1 to {INTEGER_MAX})"),
    bad("run_attempt-negative", {"run_attempt": -2}, "run_attempt: -2 is out of range"),
    bad("run_attempt-over-integer", {"run_attempt": INTEGER_MAX + 1},
        "run_attempt: 2147483648 is out of"),
    bad("run_attempt-float", {"run_attempt": 2.0},
        "run_attempt: expected an integer, got number 2.0"),
    bad("run_attempt-boolean", {"run_attempt": True},
        "run_attempt: expected an integer, got boolean"),
    bad("run_attempt-string", {"run_attempt": "2"}, "run_attempt: expected an integer, got string"),
    bad("run_attempt-array", {"run_attempt": [2]},
        "run_attempt: expected an integer, got array"),
    accepted("run_attempt-integer-max", {"run_attempt": INTEGER_MAX}),
    accepted("run_attempt-of-a-stage", {"run_attempt": 2, "attempt": 1, "stage_name": "rerun"}),
    # ---- attributes: a JSON object of at most 64 levels
    bad("attributes-string", {"attributes": "host=a"}, "attributes: expected a JSON object"),
    bad("attributes-array", {"attributes": [1]}, "attributes: expected a JSON object, got array"),
    bad("attributes-true", {"attributes": True}, "attributes: expected a JSON object, got bool"),
    bad("attributes-65-levels", {"attributes": nested(65)}, "attributes: nested deeper than 64"),
    bad("attributes-200-levels-in-lists", {"attributes": {"l": [[[[[[[[[[nested(190)]]]]]]]]]]}},
        "attributes: nested deeper than 64 levels"),
    bad("attributes-nan", valid_line("attributes-nan")[:-1] + b', "attributes": {"r": NaN}}',
        "attributes: NaN and infinity are not JSON"),
    bad("attributes-minus-infinity", valid_line("attributes-inf")[:-1]
        + b', "attributes": {"r": [-Infinity]}}', "attributes: NaN and infinity are not JSON"),
    accepted("attributes-63-levels", {"attributes": nested(63)}),
    accepted("attributes-4000-digit-number", {"attributes": {"n": 10**3999, "m": -(10**3999)}}),
    # ---- fields the contract does not have
    bad("unknown-field", {"colour": "red"}, "colour: unknown field"),
    bad("unknown-field-camel-case", {"pipelineName": "p"}, "pipelineName: unknown field"),
    bad("unknown-field-empty-key", {"": 1}, "'': unknown field"),
    bad("unknown-field-half-mb-key", {"k" * HALF_MB: 1}, "'kkkkkkkkkk"),
    bad("unknown-field-looks-like-sql", {SQL: 1}, f'"{SQL}": unknown field'),
    # ---- not an object
    bad("array-of-an-event", b"[" + valid_line("in-array") + b"]", "expected a JSON object, "
        "got array"),
    bad("string", b'"running"', "expected a JSON object, got string"),
    bad("number", b"42", "expected a JSON object, got number"),
    bad("nan", b"NaN", "expected a JSON object, got number"),
    bad("null", b"null", "expected a JSON object, got null"),
    bad("true", b"true", "expected a JSON object, got boolean"),
    bad("empty-object", b"{}", "run_key: one of run_key or pipeline_id is required"),
    # ---- duplicate keys: which value would count is anybody's guess
    bad("duplicate-key-status", valid_line("dup-status")[:-1] + b', "status": "failed"}',
        "duplicate key 'status'"),
    bad("duplicate-key-same-value", valid_line("dup-same")[:-1] + b', "status": "running"}',
        "duplicate key 'status'"),
    bad("duplicate-key-in-attributes", valid_line("dup-attr")[:-1]
        + b', "attributes": {"host": "a", "host": "b"}}', "duplicate key 'host'"),
    # ---- blank lines are skipped, but only ASCII whitespace is blank
    Case("blank-empty", b"", SKIPPED),
    Case("blank-spaces", b"    ", SKIPPED),
    Case("blank-tabs", b"\t \t", SKIPPED),
    Case("blank-crlf", b"\r", SKIPPED),
    Case("blank-vertical-tab-form-feed", b"\x0b\x0c", SKIPPED),
    bad("no-break-space-is-not-blank", "\u00a0".encode(), "not valid JSON (Expecting value"),
    bad("ideographic-space-is-not-blank", "\u3000".encode(), "not valid JSON"),
    bad("padded-with-spaces", b"  " + encode(event("padded", status="done")) + b"  ",
        "status: 'done' is not"),
    # ---- strings that look like SQL, or like psycopg's placeholders, or like COPY's escapes,
    # are names like any other: they must land verbatim, reaching SQL only as parameters.
    accepted("sql-in-names", {"run_key": SQL_RUN, "pipeline_name": SQL, "stage_name": SQL}),
    accepted("sql-in-error-and-attributes",
             {"status": "failed", "error_message": f"{SQL} ' or '1'='1",
              "attributes": {SQL: SQL, "q": "'; select pg_sleep(10); --"}}),
    accepted("placeholders-in-names",
             {"run_key": PLACEHOLDER_RUN, "pipeline_name": "%%s %(x)s", "stage_name": "%s"}),
    accepted("copy-escapes-in-names", {"stage_name": "\\N", "status": "failed",
                                       "error_message": "\\. \\N \\x00 \\000 \\u0000 \\"}),
    Case("sql-in-names-redelivered",
         encode(event("sql-in-names", run_key=SQL_RUN, status="failed")), DUPLICATE),
)  # fmt: skip
