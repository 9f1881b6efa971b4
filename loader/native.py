"""Native run events: a JSON object of the contract's fields, checked field by field."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from loader import fields
from loader.contract import (
    BIGINT_MAX,
    FIELDS,
    INTEGER_MAX,
    OPENLINEAGE_EVENT_ATTRIBUTE,
    OPENLINEAGE_PLACEMENT_ATTRIBUTE,
    STATUSES,
    Event,
)
from loader.errors import BadEventError


def parse_native_event(document: Mapping[Any, Any]) -> Event:
    """Validate a decoded native event into an Event, or raise BadEventError.

    The first field that breaks the contract is named, in a fixed order of checks.
    """
    unknown = sorted(str(key) for key in document if key not in FIELDS)
    if unknown:
        raise BadEventError(fields.shown_key(unknown[0]), "unknown field")

    run_key = fields.optional_name(document.get("run_key"), "run_key")
    pipeline_id = fields.optional_integer(
        document.get("pipeline_id"), "pipeline_id", minimum=1, maximum=BIGINT_MAX
    )
    if run_key is None and pipeline_id is None:
        raise BadEventError("run_key", "one of run_key or pipeline_id is required")
    status = document.get("status")
    if status not in STATUSES:
        shown = "missing; expected" if status is None else f"{fields.shorten(repr(status))} is not"
        raise BadEventError("status", f"{shown} one of {', '.join(STATUSES)}")
    attributes = fields.attributes(document.get("attributes"), "attributes")
    for reserved in (OPENLINEAGE_EVENT_ATTRIBUTE, OPENLINEAGE_PLACEMENT_ATTRIBUTE):
        if attributes is not None and reserved in attributes:
            raise BadEventError(f"attributes.{reserved}", "reserved for OpenLineage RunEvents")
    error_message = fields.optional_text(document.get("error_message"), "error_message")
    if error_message is not None:
        error_message, attributes = fields.truncate_error_message(error_message, attributes)
    return Event(
        event_id=fields.event_id(document.get("event_id"), "event_id"),
        status=status,
        event_time=fields.timestamp(document.get("event_time"), "event_time"),
        run_key=run_key,
        pipeline_id=pipeline_id,
        pipeline_name=fields.optional_name(document.get("pipeline_name"), "pipeline_name"),
        stage_name=fields.optional_name(document.get("stage_name"), "stage_name"),
        records_processed=fields.optional_integer(
            document.get("records_processed"), "records_processed", minimum=0, maximum=BIGINT_MAX
        ),
        error_message=error_message,
        attempt=fields.optional_integer(
            document.get("attempt"), "attempt", minimum=1, maximum=INTEGER_MAX
        )
        or 1,
        run_attempt=fields.optional_integer(
            document.get("run_attempt"), "run_attempt", minimum=1, maximum=INTEGER_MAX
        )
        or 1,
        attributes=attributes,
    )
