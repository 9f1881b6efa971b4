"""Field checks shared by the native and the OpenLineage parsers.

Each takes a value and the path to name in its error, so a producer reads the reason in
its own format's terms (`event_time` for a native event, `eventTime` for OpenLineage).
Every failure raises BadEventError; reasons are printed and stored as text, so they never
quote more than a short, escaped piece of the value.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from loader.contract import (
    ERROR_MESSAGE_FULL_ATTRIBUTE,
    ERROR_MESSAGE_LIMIT_BYTES,
    MAX_ATTRIBUTES_DEPTH,
    MAX_NAME_LENGTH,
    new_event_id,
)
from loader.errors import BadEventError


def json_type(value: object) -> str:
    """Name a decoded value's JSON type, as a reason shows it."""
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "number"
    return names.get(type(value), type(value).__name__)


def shorten(text: str, limit: int = 60) -> str:
    """Cut a quoted value to `limit` characters for a reason."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def shown_key(key: str) -> str:
    """A key as a reason may show it: plain if it is a plain name, else quoted and shortened.

    A reason is printed and stored as text: no NUL, no lone surrogate, no megabyte of key.
    """
    if re.fullmatch(r"[\w.-]{1,60}", key, flags=re.ASCII):
        return key
    return shorten(repr(key[:60]))


def check_text(value: str, path: str) -> None:
    """Reject what PostgreSQL text cannot hold: NUL, and lone UTF-16 surrogates from JSON."""
    if "\x00" in value:
        raise BadEventError(path, "contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadEventError(path, "contains an unpaired UTF-16 surrogate escape") from None


def optional_text(value: object, path: str) -> str | None:
    """Return a string that PostgreSQL can store, or None for an absent value."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadEventError(path, f"expected a string, got {json_type(value)}")
    check_text(value, path)
    return value


def required_text(value: object, path: str) -> str:
    """Return a string that PostgreSQL can store; absent is an error."""
    text = optional_text(value, path)
    if text is None:
        raise BadEventError(path, "missing")
    return text


def name_length(value: str | None, path: str) -> str | None:
    """Check a name's length: 1 to MAX_NAME_LENGTH characters."""
    if value is not None and not 1 <= len(value) <= MAX_NAME_LENGTH:
        raise BadEventError(path, f"must be 1 to {MAX_NAME_LENGTH} characters, got {len(value)}")
    return value


def optional_name(value: object, path: str) -> str | None:
    """Return a name (1 to MAX_NAME_LENGTH characters of text), or None."""
    return name_length(optional_text(value, path), path)


def required_name(value: object, path: str) -> str:
    """Return a name (1 to MAX_NAME_LENGTH characters of text); absent is an error."""
    text = required_text(value, path)
    name_length(text, path)
    return text


def optional_integer(value: object, path: str, *, minimum: int, maximum: int) -> int | None:
    """Return an integer within [minimum, maximum] (never a boolean or float), or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        shown = shorten(json.dumps(value, default=str))
        raise BadEventError(path, f"expected an integer, got {json_type(value)} {shown}")
    if not minimum <= value <= maximum:
        shown = str(value) if value.bit_length() <= 128 else f"a {value.bit_length()}-bit integer"
        raise BadEventError(path, f"{shown} is out of range ({minimum} to {maximum})")
    return int(value)


def timestamp(value: object, path: str) -> datetime:
    """Return an ISO 8601 timestamp with an offset, in UTC; one without an offset is an error."""
    if value is None:
        raise BadEventError(path, "missing; an ISO 8601 timestamp with offset is required")
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise BadEventError(path, f"{shorten(value)!r} is not an ISO 8601 timestamp") from None
    elif isinstance(value, datetime):
        parsed = value
    else:
        raise BadEventError(path, f"expected an ISO 8601 string, got {json_type(value)}")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise BadEventError(path, f"{shorten(str(value))!r} has no UTC offset (add Z or +HH:MM)")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise BadEventError(path, f"{value!r} is out of range in UTC") from None


def event_id(value: object, path: str) -> uuid.UUID:
    """Return the event's UUID, or a new UUIDv7 when it has none."""
    if value is None:
        return new_event_id()
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str):
        raise BadEventError(path, f"expected a UUID string, got {json_type(value)}")
    try:
        return uuid.UUID(value)
    except ValueError:
        raise BadEventError(path, f"{shorten(value)!r} is not a UUID") from None


def attributes(value: object, path: str) -> dict[str, Any] | None:
    """Return a JSON object that jsonb can store (depth, text, finite numbers), or None."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise BadEventError(path, f"expected a JSON object, got {json_type(value)}")
    _check_json_value(value, path, depth=1)
    return dict(value)


def _check_json_value(value: object, path: str, *, depth: int) -> None:
    if depth > MAX_ATTRIBUTES_DEPTH:
        raise BadEventError(path, f"nested deeper than {MAX_ATTRIBUTES_DEPTH} levels")
    if isinstance(value, str):
        check_text(value, path)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _check_json_value(str(key), path, depth=depth)
            _check_json_value(item, path, depth=depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_json_value(item, path, depth=depth + 1)
    elif isinstance(value, float) and not math.isfinite(value):
        raise BadEventError(path, "NaN and infinity are not JSON")
    elif value is not None and not isinstance(value, bool | int | float):
        raise BadEventError(path, f"{type(value).__name__} is not a JSON value")


def truncate_error_message(
    message: str, attributes: dict[str, Any] | None
) -> tuple[str, dict[str, Any] | None]:
    """Cut a message to the stored limit at a character boundary; keep the whole in attributes."""
    encoded = message.encode("utf-8")
    if len(encoded) <= ERROR_MESSAGE_LIMIT_BYTES:
        return message, attributes
    truncated = encoded[:ERROR_MESSAGE_LIMIT_BYTES].decode("utf-8", errors="ignore")
    return truncated, {**(attributes or {}), ERROR_MESSAGE_FULL_ATTRIBUTE: message}
