"""The run-event contract: one event, its validation, and its identity."""

from __future__ import annotations

import json
import math
import os
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from loader.errors import BadEventError

STATUSES = ("pending", "running", "completed", "failed")
TERMINAL_STATUSES = frozenset({"completed", "failed"})
MAX_NAME_LENGTH = 200
# error_message is stored up to this many UTF-8 bytes; the full text goes to attributes.
ERROR_MESSAGE_LIMIT_BYTES = 8 * 1024
ERROR_MESSAGE_FULL_ATTRIBUTE = "error_message_full"
# jsonb and the JSON parser both recurse; a bound keeps hostile nesting from reaching them.
MAX_ATTRIBUTES_DEPTH = 64
_DERIVED_ID_NAMESPACE = uuid.UUID("5d0f4a52-8a57-4a8e-9d2c-2f1c7b7d1e01")
_BIGINT_MAX = 2**63 - 1
_INTEGER_MAX = 2**31 - 1

FIELDS = frozenset(
    {
        "event_id",
        "run_key",
        "pipeline_id",
        "pipeline_name",
        "stage_name",
        "status",
        "event_time",
        "records_processed",
        "error_message",
        "attempt",
        "attributes",
    }
)


@dataclass(frozen=True, slots=True)
class Event:
    """One validated run event. Build it with `parse_event`, never by hand."""

    event_id: uuid.UUID
    status: str
    event_time: datetime
    run_key: str | None = None
    pipeline_id: int | None = None
    pipeline_name: str | None = None
    stage_name: str | None = None
    records_processed: int | None = None
    error_message: str | None = None
    attempt: int = 1
    attributes: Mapping[str, Any] | None = None


def new_event_id() -> uuid.UUID:
    """Return a UUIDv7: time-ordered, so new events land near each other in the primary key."""
    unix_ms = time.time_ns() // 1_000_000
    random_bits = int.from_bytes(os.urandom(10), "big")
    value = (unix_ms & (2**48 - 1)) << 80
    value |= 0x7 << 76  # version
    value |= (random_bits >> 62 & 0xFFF) << 64  # rand_a
    value |= 0b10 << 62  # variant
    value |= random_bits & (2**62 - 1)  # rand_b
    return uuid.UUID(int=value)


def derived_event_id(*parts: str) -> uuid.UUID:
    """Return an event id fixed by `parts`: sending the same event twice counts once."""
    return uuid.uuid5(_DERIVED_ID_NAMESPACE, json.dumps(parts))


def document_bytes(document: Mapping[str, Any]) -> bytes:
    """Return a decoded event as the JSON line a bulk file would hold (no newline)."""
    return json.dumps(document, default=str).encode()


def parse_line(line: bytes) -> Event:
    """Validate one JSON line of a bulk file into an Event, or raise BadEventError."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BadEventError(None, f"not valid UTF-8 (byte {error.start})") from None
    try:
        if text.startswith("\ufeff"):  # json.loads checks this; a decoder's decode does not
            raise json.JSONDecodeError("Unexpected UTF-8 BOM", text, 0)
        document = _DECODER.decode(text)
    except json.JSONDecodeError as error:
        message = error.msg.removesuffix(" at")  # "Invalid control character at"
        raise BadEventError(None, f"not valid JSON ({message} at column {error.colno})") from None
    except RecursionError:
        raise BadEventError(None, "JSON nested too deeply") from None
    except ValueError as error:  # e.g. an integer too long for Python to convert
        raise BadEventError(None, f"not valid JSON ({error})") from None
    try:
        return parse_event(document)
    except RecursionError:  # a value nested just below the parser's limit, shown in a reason
        raise BadEventError(None, "JSON nested too deeply") from None


def parse_event(document: object) -> Event:
    """Validate a decoded event (a mapping of the contract's fields) into an Event.

    Raise BadEventError naming the first field that breaks the contract. An OpenLineage
    RunEvent is mapped onto the contract first (loader.openlineage).
    """
    if not isinstance(document, Mapping):
        raise BadEventError(None, f"expected a JSON object, got {_json_type(document)}")
    from loader import openlineage  # noqa: PLC0415  # it imports this module

    if openlineage.is_run_event(document):
        return openlineage.parse_run_event(document)
    unknown = sorted(str(key) for key in document if key not in FIELDS)
    if unknown:
        raise BadEventError(_shown_key(unknown[0]), "unknown field")

    run_key = _optional_name(document, "run_key")
    pipeline_id = _optional_integer(document, "pipeline_id", minimum=1, maximum=_BIGINT_MAX)
    if run_key is None and pipeline_id is None:
        raise BadEventError("run_key", "one of run_key or pipeline_id is required")
    status = document.get("status")
    if status not in STATUSES:
        shown = "missing; expected" if status is None else f"{_shorten(repr(status))} is not"
        raise BadEventError("status", f"{shown} one of {', '.join(STATUSES)}")
    attributes = _attributes(document)
    error_message = _optional_text(document, "error_message")
    if error_message is not None:
        error_message, attributes = _truncate_error_message(error_message, attributes)
    return Event(
        event_id=_event_id(document),
        status=status,
        event_time=_event_time(document),
        run_key=run_key,
        pipeline_id=pipeline_id,
        pipeline_name=_optional_name(document, "pipeline_name"),
        stage_name=_optional_name(document, "stage_name"),
        records_processed=_optional_integer(
            document, "records_processed", minimum=0, maximum=_BIGINT_MAX
        ),
        error_message=error_message,
        attempt=_optional_integer(document, "attempt", minimum=1, maximum=_INTEGER_MAX) or 1,
        attributes=attributes,
    )


def _json_type(value: object) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "number"
    return names.get(type(value), type(value).__name__)


def _event_id(document: Mapping[str, Any]) -> uuid.UUID:
    value = document.get("event_id")
    if value is None:
        return new_event_id()
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str):
        raise BadEventError("event_id", f"expected a UUID string, got {_json_type(value)}")
    try:
        return uuid.UUID(value)
    except ValueError:
        raise BadEventError("event_id", f"{_shorten(value)!r} is not a UUID") from None


def _event_time(document: Mapping[str, Any]) -> datetime:
    value = document.get("event_time")
    if value is None:
        raise BadEventError("event_time", "missing; an ISO 8601 timestamp with offset is required")
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise BadEventError(
                "event_time", f"{_shorten(value)!r} is not an ISO 8601 timestamp"
            ) from None
    elif isinstance(value, datetime):
        parsed = value
    else:
        raise BadEventError("event_time", f"expected an ISO 8601 string, got {_json_type(value)}")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise BadEventError(
            "event_time", f"{_shorten(str(value))!r} has no UTC offset (add Z or +HH:MM)"
        )
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise BadEventError("event_time", f"{value!r} is out of range in UTC") from None


def _optional_text(document: Mapping[str, Any], field: str, path: str | None = None) -> str | None:
    """Return the string at `field`, or None; errors name `path` (default: the field)."""
    value = document.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadEventError(path or field, f"expected a string, got {_json_type(value)}")
    _check_text(value, path or field)
    return value


def _optional_name(document: Mapping[str, Any], field: str) -> str | None:
    value = _optional_text(document, field)
    if value is not None and not 1 <= len(value) <= MAX_NAME_LENGTH:
        raise BadEventError(field, f"must be 1 to {MAX_NAME_LENGTH} characters, got {len(value)}")
    return value


def _optional_integer(
    document: Mapping[str, Any], field: str, *, minimum: int, maximum: int
) -> int | None:
    value = document.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        shown = _shorten(json.dumps(value, default=str))
        raise BadEventError(field, f"expected an integer, got {_json_type(value)} {shown}")
    if not minimum <= value <= maximum:
        shown = str(value) if value.bit_length() <= 128 else f"a {value.bit_length()}-bit integer"
        raise BadEventError(field, f"{shown} is out of range ({minimum} to {maximum})")
    return int(value)


def _attributes(document: Mapping[str, Any]) -> dict[str, Any] | None:
    value = document.get("attributes")
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise BadEventError("attributes", f"expected a JSON object, got {_json_type(value)}")
    _check_json_value(value, depth=1)
    return dict(value)


def _check_json_value(value: object, *, depth: int) -> None:
    if depth > MAX_ATTRIBUTES_DEPTH:
        raise BadEventError("attributes", f"nested deeper than {MAX_ATTRIBUTES_DEPTH} levels")
    if isinstance(value, str):
        _check_text(value, "attributes")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _check_json_value(str(key), depth=depth)
            _check_json_value(item, depth=depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_json_value(item, depth=depth + 1)
    elif isinstance(value, float) and not math.isfinite(value):
        raise BadEventError("attributes", "NaN and infinity are not JSON")
    elif value is not None and not isinstance(value, bool | int | float):
        raise BadEventError("attributes", f"{type(value).__name__} is not a JSON value")


def _check_text(value: str, field: str) -> None:
    """Reject what PostgreSQL text cannot hold: NUL, and lone UTF-16 surrogates from JSON."""
    if "\x00" in value:
        raise BadEventError(field, "contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadEventError(field, "contains an unpaired UTF-16 surrogate escape") from None


def _truncate_error_message(
    message: str, attributes: dict[str, Any] | None
) -> tuple[str, dict[str, Any] | None]:
    encoded = message.encode("utf-8")
    if len(encoded) <= ERROR_MESSAGE_LIMIT_BYTES:
        return message, attributes
    truncated = encoded[:ERROR_MESSAGE_LIMIT_BYTES].decode("utf-8", errors="ignore")
    return truncated, {**(attributes or {}), ERROR_MESSAGE_FULL_ATTRIBUTE: message}


def _object_without_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json.loads' object hook: a key given twice is ambiguous (which value counts?)."""
    document = dict(pairs)
    if len(document) == len(pairs):
        return document
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise BadEventError(None, f"duplicate key {_shorten(repr(key[:60]))}")
        seen.add(key)
    return document  # not reached: fewer keys than pairs means a key repeats


# One decoder for every line: json.loads with a hook would build a new one per call.
_DECODER = json.JSONDecoder(object_pairs_hook=_object_without_duplicate_keys)


def _shown_key(key: str) -> str:
    """A key as a reason may show it: plain if it is a plain name, else quoted and shortened.

    A reason is printed and stored as text: no NUL, no lone surrogate, no megabyte of key.
    """
    if re.fullmatch(r"[\w.-]{1,60}", key, flags=re.ASCII):
        return key
    return _shorten(repr(key[:60]))


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
