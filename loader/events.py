"""From a JSON line (or a decoded document) to a validated Event: decode, then pick the parser.

A line is a native event (`loader.native`) or an OpenLineage RunEvent
(`loader.openlineage`); this module is the one place that chooses. A plain native line
takes the fast path (`loader.native_fast`) first.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from loader import fields
from loader.contract import Event
from loader.errors import BadEventError
from loader.native import parse_native_event
from loader.native_fast import decode_plain_line
from loader.openlineage import is_run_event, parse_run_event


def parse_line(line: bytes) -> Event:
    """Validate one JSON line of a bulk file into an Event, or raise BadEventError."""
    plain = decode_plain_line(line)
    return plain[1] if plain is not None else parse_any_line(line)


def parse_any_line(line: bytes) -> Event:
    """The general path: every line, every rule, and the reason when one breaks."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BadEventError(None, f"not valid UTF-8 (byte {error.start})") from None
    try:
        if text.startswith("\ufeff"):  # json.loads checks this; a decoder's decode does not
            raise json.JSONDecodeError("Unexpected UTF-8 BOM", text, 0)
        document = decode_document(text)
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
    """Validate a decoded event (native fields, or an OpenLineage RunEvent) into an Event.

    Raise BadEventError naming the first field that breaks the contract.
    """
    if not isinstance(document, Mapping):
        raise BadEventError(None, f"expected a JSON object, got {fields.json_type(document)}")
    if is_run_event(document):
        return parse_run_event(document)
    return parse_native_event(document)


def decode_document(text: str) -> object:
    """Decode JSON text; a key given twice in an object raises BadEventError.

    Raises what the standard decoder raises otherwise (JSONDecodeError, RecursionError,
    ValueError for an integer too long to convert): callers word the reason.
    """
    return _DECODER.decode(text)


def document_bytes(document: Mapping[str, Any]) -> bytes:
    """Return a decoded event as the JSON line a bulk file would hold (no newline)."""
    return json.dumps(document, default=str).encode()


def _object_without_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """The decoder's object hook: a key given twice is ambiguous (which value counts?)."""
    document = dict(pairs)
    if len(document) < len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise BadEventError(None, f"duplicate key {fields.shorten(repr(key[:60]))}")
            seen.add(key)
    return document


# One decoder for every line: json.loads with a hook would build a new one per call.
_DECODER = json.JSONDecoder(object_pairs_hook=_object_without_duplicate_keys)
