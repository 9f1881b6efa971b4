"""The fast path for plain native lines against the general path it stands in for.

`parse_line` tries `loader.native_fast` first; whatever it accepts must be exactly what
the general path (`parse_any_line`: the standard decoder and every rule) gives the same
line, and whatever it declines the general path decides. So for every line, the outcome
(the Event, or the reason) is the general path's: on the hostile corpus, and on valid
events mutated field by field, key by key and byte by byte.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loader import fields, native_fast
from loader.contract import ERROR_MESSAGE_LIMIT_BYTES, MAX_NAME_LENGTH, Event
from loader.errors import BadEventError
from loader.events import parse_any_line, parse_line
from loader.native_fast import decode_plain_line
from loader.plain_rows import events, plain_rows
from tests.support.hostile_corpus import CASES

GENERATED_ID = uuid.UUID("01890a5d-ac96-774b-bcce-b302099a8057")
"""Stands in for a new event id on both paths, so that their Events compare."""


@contextmanager
def fixed_new_ids() -> Iterator[None]:
    with (
        mock.patch.object(fields, "new_event_id", return_value=GENERATED_ID),
        mock.patch.object(native_fast, "new_event_id", return_value=GENERATED_ID),
    ):
        yield


def outcome(parse: Callable[[bytes], Event], line: bytes) -> Event | str:
    try:
        return parse(line)
    except BadEventError as error:
        return str(error)


def fast_event(line: bytes) -> Event | None:
    plain = decode_plain_line(line)
    return None if plain is None else plain[1]


def assert_same_outcome(line: bytes) -> None:
    with fixed_new_ids():
        plain = decode_plain_line(line)
        general = outcome(parse_any_line, line)
        assert outcome(parse_line, line) == general
    if plain is not None:  # accepted: exactly the general path's Event, and the line's object
        document, fast = plain
        assert fast == general
        assert document == json.loads(line)
    rows = plain_rows([line])
    if rows is not None:  # the compiled check takes less, and gives the same Event
        [compiled] = events(rows)
        assert plain is not None, "the compiled check took a line the fast path declines"
        assert isinstance(general, Event)
        if general.event_id == GENERATED_ID:  # a new id: its own, a UUIDv7
            assert compiled.event_id.version == 7
            compiled = compiled._replace(event_id=GENERATED_ID)
        assert compiled == general


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_every_hostile_line_gets_the_general_paths_outcome(case: Any) -> None:
    assert_same_outcome(case.raw)


def test_a_plain_line_takes_the_fast_path() -> None:
    """Or the fast path would be tested only for declining."""
    line = (
        b'{"run_key":"r-1","pipeline_name":"daily","stage_name":"load","status":"completed",'
        b'"event_time":"2026-01-01T10:00:00+02:00","records_processed":5,"attempt":2}'
    )
    with fixed_new_ids():
        assert fast_event(line) == parse_any_line(line)
    assert fast_event(line.replace(b'"attempt":2', b'"attempt":2.0')) is None


def test_a_new_event_id_is_a_uuid7_in_time_order() -> None:
    line = b'{"run_key":"r","status":"running","event_time":"2026-01-01T10:00:00Z"}'
    first, second = fast_event(line), fast_event(line)
    assert first is not None
    assert second is not None
    assert first.event_id.version == second.event_id.version == 7
    assert first.event_id.variant == uuid.RFC_4122
    assert uuid.UUID(str(first.event_id)) == first.event_id != second.event_id
    assert first.event_id.int >> 80 <= second.event_id.int >> 80  # milliseconds first


BOUNDS: list[tuple[str, Any]] = [
    *[
        (name, "n" * size)
        for name in ("run_key", "pipeline_name", "stage_name")
        for size in (200, 201)
    ],
    *[("stage_name", "é" * size) for size in (MAX_NAME_LENGTH, MAX_NAME_LENGTH + 1)],
    *[("error_message", "x" * (ERROR_MESSAGE_LIMIT_BYTES + d)) for d in (0, 1)],
    *[("error_message", "é" * (ERROR_MESSAGE_LIMIT_BYTES // 2 + d)) for d in (0, 1)],
    ("error_message", "x" + "é" * (ERROR_MESSAGE_LIMIT_BYTES // 2)),  # one byte over
    *[(name, value) for name in ("attempt", "run_attempt") for value in (0, 1, 2**31 - 1, 2**31)],
    *[("records_processed", value) for value in (-1, 0, 2**63 - 1, 2**63)],
    *[("pipeline_id", value) for value in (0, 1, 2**63 - 1, 2**63, 2**64)],
]


@pytest.mark.parametrize(("name", "value"), BOUNDS, ids=lambda item: str(item)[:30])
def test_a_value_at_its_bound_gets_the_general_paths_outcome(name: str, value: Any) -> None:
    document = {"run_key": "r", "status": "failed", "event_time": "2026-01-01T10:00:00Z"}
    assert_same_outcome(json.dumps({**document, name: value}).encode())


# Where the compiled check (loader/_plain_rows.c) reads the bytes itself: times, numbers, ids.
EDGES = [
    *[
        f'"event_time":"{time}"'
        for time in (
            "2026-01-01T10:00:00Z", "2026-01-01T10:00:00z", "2026-01-01 10:00:00Z",
            "2026-01-01T10:00:00+23:59", "2026-01-01T10:00:00+24:00", "2026-01-01T10:00:00-00:00",
            "2026-01-01T10:00:00+0530", "2026-01-01T10:00:00+05", "2026-01-01T10:00:00+05:30:00",
            "2026-01-01T10:00:00.1Z", "2026-01-01T10:00:00.123456Z", "2026-01-01T10:00:00.1234567Z",
            "2026-01-01T10:00:00.Z", "2026-02-29T10:00:00Z", "2024-02-29T10:00:00Z",
            "2026-04-31T10:00:00Z", "2026-01-01T24:00:00Z", "2026-01-01T10:60:00Z",
            "2026-01-01T10:00:60Z", "0001-01-01T00:00:00Z", "0001-01-01T00:59:59+01:00",
            "9999-12-31T23:59:59.999999Z", "9999-12-31T23:00:00-01:00", "+2026-01-01T10:00:00Z",
        )
    ],
    *[
        f'"event_time":"2026-01-01T10:00:00Z","records_processed":{number}'
        for number in ("0", "00", "01", "-0", "7", "1.0", "1e2", "9223372036854775807",
                       "9223372036854775808", "99999999999999999999", "true", '"7"')
    ],
    *[
        f'"event_time":"2026-01-01T10:00:00Z","event_id":{event_id}'
        for event_id in (
            '"0b0ab7a4-7b1e-4b5a-9c55-3f1e8f1f6a01"', '"0B0AB7A4-7B1E-4B5A-9C55-3F1E8F1F6A01"',
            '"0b0ab7a47b1e4b5a9c553f1e8f1f6a01"', '"0b0ab7a4-7b1e-4b5a-9c55-3f1e8f1f6a0"',
            '"0b0ab7a4-7b1e-4b5a-9c55-3f1e8f1f6a0g"',
            '"urn:uuid:0b0ab7a4-7b1e-4b5a-9c55-3f1e8f1f6a01"', "null", "7",
        )
    ],
]  # fmt: skip


@pytest.mark.parametrize("fields", EDGES)
def test_an_edge_the_compiled_check_reads_itself_gets_the_general_paths_outcome(
    fields: str,
) -> None:
    assert_same_outcome(b'{"run_key":"r","status":"running",' + fields.encode() + b"}")


# A name's bytes as a producer might send them: UTF-8 the compiled check validates itself.
RAW_NAMES = [
    b"caf\xc3\xa9", b"\xf0\x9f\x98\x80", b"\x7f", b"\xc0\xaf", b"\xe0\x80\x80",
    b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xf8\x88\x80\x80\x80", b"\x80", b"\xe2\x82",
    b"r\x01", b"r\x1f", b"r\t", b"\xef\xbb\xbf",
]  # fmt: skip


@pytest.mark.parametrize("name", RAW_NAMES, ids=repr)
def test_a_names_raw_bytes_get_the_general_paths_outcome(name: bytes) -> None:
    assert_same_outcome(
        b'{"run_key":"' + name + b'","status":"running","event_time":"2026-01-01T10:00:00Z",'
        b'"stage_name":"s' + name + b'"}'
    )


# ---- valid events, mutated


def text(min_size: int = 0, max_size: int = 12) -> st.SearchStrategy[str]:
    hostile = st.characters() | st.sampled_from(["\x00", "\ud800", "\udfff", "\ufeff", '"', ":"])
    return st.text(hostile, min_size=min_size, max_size=max_size)


NAMES = st.one_of(
    text(1),
    st.sampled_from([MAX_NAME_LENGTH - 1, MAX_NAME_LENGTH, MAX_NAME_LENGTH + 1]).map("n".__mul__),
    st.sampled_from([MAX_NAME_LENGTH, MAX_NAME_LENGTH + 1]).map("é".__mul__),
)
MESSAGES = st.one_of(
    text(),
    st.sampled_from([-1, 0, 1]).map(lambda d: "x" * (ERROR_MESSAGE_LIMIT_BYTES + d)),
    st.sampled_from([-1, 0, 1]).map(lambda d: "é" * (ERROR_MESSAGE_LIMIT_BYTES // 2 + d)),
)
INTEGERS = st.one_of(
    st.integers(),
    st.sampled_from([0, 1, 2**31 - 1, 2**31, 2**63 - 1, 2**63, 2**64, -(2**63) - 1]),
)
TIMES = st.sampled_from(
    [
        "2026-01-01T10:00:00Z",
        "2026-01-01T10:00:00+05:30",
        "2026-01-01 10:00:00.123456-09:59",
        "2026-01-01T10:00:00",
        "2026-01-01",
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
        "2026-13-01T10:00:00Z",
        "yesterday",
    ]
)
EVENT_IDS = st.one_of(
    st.uuids().map(str),
    st.uuids().map(lambda value: "{" + str(value).upper() + "}"),
    st.uuids().map(lambda value: value.urn),
    text(),
)
VALUES: dict[str, st.SearchStrategy[Any]] = {
    "event_id": EVENT_IDS,
    "run_key": NAMES,
    "pipeline_id": INTEGERS,
    "pipeline_name": NAMES,
    "stage_name": NAMES,
    "status": st.sampled_from(["pending", "running", "completed", "failed", "done", "Running"]),
    "event_time": TIMES,
    "records_processed": INTEGERS,
    "error_message": MESSAGES,
    "attempt": INTEGERS,
    "run_attempt": INTEGERS,
}
ANY_JSON = st.recursive(
    st.none() | st.booleans() | INTEGERS | st.floats() | text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(text(max_size=5), children, max_size=3)
    ),
    max_leaves=6,
)


@st.composite
def mutated_lines(draw: st.DrawFn) -> bytes:
    """A valid event's line, then changes a producer or an attacker could make."""
    pairs: list[tuple[str, Any]] = [
        ("run_key", "run-1"),
        ("status", "running"),
        ("event_time", "2026-01-01T10:00:00Z"),
    ]
    for name in draw(st.lists(st.sampled_from(sorted(VALUES)), max_size=4)):
        pairs.append((name, draw(VALUES[name])))
    for _ in range(draw(st.integers(0, 2))):
        position = draw(st.integers(0, len(pairs) - 1))
        change = draw(st.sampled_from(["value", "any json", "drop", "repeat", "unknown"]))
        key = pairs[position][0]
        if change == "value" and key in VALUES:
            pairs[position] = (key, draw(VALUES[key]))
        elif change == "any json":
            pairs[position] = (key, draw(ANY_JSON))
        elif change == "drop":
            del pairs[position]
        elif change == "repeat":
            pairs.insert(draw(st.integers(0, len(pairs))), (key, draw(VALUES.get(key, ANY_JSON))))
        else:
            pairs.append((draw(st.sampled_from(["attributes", "extra", "eventType"])), {}))
    colons = st.sampled_from([":", ":", ": ", " :", "\t:", "\r :"])  # for each key its own
    escaped = draw(st.booleans())

    def key_text(key: str) -> str:
        if draw(st.integers(0, 9)) == 0:  # the same key, spelled with escapes
            return '"' + "".join(f"\\u{ord(c):04x}" for c in key) + '"'
        return json.dumps(key)

    body = ", ".join(
        f"{key_text(key)}{draw(colons)}{json.dumps(value, ensure_ascii=escaped)}"
        for key, value in pairs
    )
    line = ("{" + body + "}").encode("utf-8", "surrogatepass")
    prefix = draw(st.sampled_from([b"", b"", b" ", b"\xef\xbb\xbf"]))
    suffix = draw(st.sampled_from([b"", b"", b" ", b"\t", b"x", b"}", b"\x00"]))
    return prefix + line + suffix


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(line=mutated_lines())
def test_a_mutated_line_gets_the_general_paths_outcome(line: bytes) -> None:
    assert_same_outcome(line)
