"""The plain native line, decoded and checked in one pass; anything else goes the general way.

Bulk files are mostly plain native events: one flat object of text and integers. This
path decodes such a line with orjson and checks it field by field without building a
reason. It returns an Event only when the general path (`loader.events.parse_line`: the
standard decoder, then `loader.native`) would accept the line and give the same Event (and
the decoded object, which the collector keeps for its spool);
for anything else (attributes, a float, a value out of range, a key given twice, bytes
orjson refuses) it returns None, and the general path decides with its reason.
tests/loader/test_native_fast.py holds it to that on hostile lines and mutations.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

from loader.contract import (
    BIGINT_MAX,
    ERROR_MESSAGE_LIMIT_BYTES,
    FIELDS,
    INTEGER_MAX,
    MAX_NAME_LENGTH,
    STATUSES,
    Event,
    new_event_id,
)

_PLAIN_FIELDS = FIELDS - {"attributes"}
_KEY_ENDS = re.compile(rb'"\s*:')
"""Where a key can end. Inside a string only an escaped quote can come before a colon,
so this counts every key of a line, and sometimes more: never fewer."""
_BLANK_COLON = re.compile(rb"\s:")
_BOM = b"\xef\xbb\xbf"


def decode_plain_line(line: bytes) -> tuple[dict[str, Any], Event] | None:
    """A plain native line decoded, and its Event; None when the general path must decide."""
    if line.startswith(_BOM):
        return None
    try:
        document = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if type(document) is not dict or not document.keys() <= _PLAIN_FIELDS:
        return None
    # orjson keeps the last of a repeated key. An object's text has a comma between each
    # two of its members and a key end after each key, and its strings and nested values
    # can only add to either count: either equal to the keys kept means none was repeated.
    keys = len(document)
    if line.count(b",") + 1 != keys and _key_ends(line) != keys:
        return None
    get = document.get
    # Any: each is checked below before it reaches the Event.
    status: Any = get("status")
    event_time: Any = get("event_time")
    run_key: Any = get("run_key")
    pipeline_id: Any = get("pipeline_id")
    pipeline_name: Any = get("pipeline_name")
    stage_name: Any = get("stage_name")
    error_message: Any = get("error_message")
    records_processed: Any = get("records_processed")
    attempt: Any = get("attempt")
    run_attempt: Any = get("run_attempt")
    # An ASCII line without \u escapes holds only ASCII text without NUL: storable, and
    # a message's length is its size in bytes.
    name, message = (_ascii_name, _ascii_message) if _escape_free(line) else (_name, _message)
    plain = (
        type(status) is str
        and status in STATUSES
        and type(event_time) is str
        and (run_key is not None or pipeline_id is not None)
        and name(run_key)
        and name(pipeline_name)
        and name(stage_name)
        and (error_message is None or message(error_message))
        and _integer(pipeline_id, 1, BIGINT_MAX)
        and _integer(records_processed, 0, BIGINT_MAX)
        and _integer(attempt, 1, INTEGER_MAX)
        and _integer(run_attempt, 1, INTEGER_MAX)
    )
    if not plain:
        return None
    at = _timestamp(event_time)
    event_id = _event_id(get("event_id"))
    if at is None or event_id is None:
        return None
    # Positional, in Event's field order: keywords cost a bulk load twice as much.
    return document, Event(
        event_id,
        status,
        at,
        run_key,
        pipeline_id,
        pipeline_name,
        stage_name,
        records_processed,
        error_message,
        attempt or 1,
        run_attempt or 1,
        None,
    )


def _escape_free(line: bytes) -> bool:
    return line.isascii() and b"\\u" not in line


def _ascii_name(value: object) -> bool:
    return value is None or (type(value) is str and 0 < len(value) <= MAX_NAME_LENGTH)


def _ascii_message(value: object) -> bool:
    return type(value) is str and len(value) <= ERROR_MESSAGE_LIMIT_BYTES


def _key_ends(line: bytes) -> int:
    """Count where keys can end: a plain count when no blank comes before a colon (then
    every key's colon follows its quote), else the pattern's."""
    if _BLANK_COLON.search(line):
        return len(_KEY_ENDS.findall(line))
    return line.count(b'":')


def _name(value: object) -> bool:
    return value is None or (
        type(value) is str and 0 < len(value) <= MAX_NAME_LENGTH and _storable(value)
    )


def _message(value: object) -> bool:
    # Over the limit the general path truncates it and keeps the whole in attributes.
    if type(value) is not str or "\x00" in value:
        return False
    if value.isascii():
        return len(value) <= ERROR_MESSAGE_LIMIT_BYTES
    try:  # one encoding: its size, and no lone surrogate
        return len(value.encode("utf-8")) <= ERROR_MESSAGE_LIMIT_BYTES
    except UnicodeEncodeError:
        return False


def _storable(value: str) -> bool:
    """Text PostgreSQL stores: no NUL, no lone surrogate (orjson refuses those anyway)."""
    if "\x00" in value:
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _integer(value: object, minimum: int, maximum: int) -> bool:
    return value is None or (type(value) is int and minimum <= value <= maximum)


def _timestamp(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        return None
    if parsed.tzinfo is UTC:  # how fromisoformat gives every zero offset
        return parsed
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        return None


def _event_id(value: object) -> uuid.UUID | None:
    if value is None:
        return new_event_id()
    if type(value) is not str:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
