"""OpenLineage RunEvents (spec 2-0-x) as contract events.

This is the mapping of the contract's "OpenLineage RunEvents" section. A RunEvent is
checked only as far as the ledger reads it, with the same field checks (`loader.fields`)
and limits as a native event. Every failure names the field by its OpenLineage path
(`run.runId: missing`): the producer speaks OpenLineage, not our contract.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from loader import fields
from loader.contract import BIGINT_MAX, FIELDS, Event, derived_event_id
from loader.errors import BadEventError

# START and RUNNING say the run is alive. OTHER only adds metadata, often after the end;
# as `running` it can never reopen a finished run (the first terminal event is final).
STATUS_BY_EVENT_TYPE = {
    "START": "running",
    "RUNNING": "running",
    "COMPLETE": "completed",
    "ABORT": "failed",
    "FAIL": "failed",
    "OTHER": "running",
}
# Where the OpenLineage details the contract has no field for go in `attributes`.
ATTRIBUTES_KEY = "openlineage"
# The summed rowCount of all outputs: no single output is to blame when the sum overflows.
ROW_COUNT_PATH = "outputs[].outputFacets.outputStatistics.rowCount"


@dataclass(frozen=True, slots=True)
class _Parent:
    """The run a RunEvent's `parent` facet points at: the ledger's run of a stage event."""

    run_id: str
    job_name: str
    job_namespace: str | None


def is_run_event(document: Mapping[Any, Any]) -> bool:
    """Whether a decoded line is an OpenLineage RunEvent rather than a native event.

    A document with any native field stays native, so a native event with a stray key
    keeps getting the "unknown field" error it always got.
    """
    shaped = "eventType" in document or ("run" in document and "job" in document)
    return shaped and not any(key in FIELDS for key in document)


def parse_run_event(document: Mapping[Any, Any]) -> Event:
    """Map a RunEvent onto the contract and validate it into an Event.

    Raise BadEventError naming the first field that breaks it, by its OpenLineage path.
    """
    event_type = _event_type(document)
    event_time = fields.timestamp(document.get("eventTime"), "eventTime")
    run = _object(document, "run", "run", required=True)
    run_id = _uuid(run, "runId", "run.runId")
    job = _object(document, "job", "job", required=True)
    job_name = fields.required_text(job.get("name"), "job.name")
    facets = _object(run, "facets", "run.facets")
    parent = _parent(facets)
    error_message, attributes = _error(facets)
    records_processed = _records_processed(document)
    attributes[ATTRIBUTES_KEY] = _provenance(document, run_id, job, parent, event_type)
    if parent is None:
        pipeline_name = fields.name_length(job_name, "job.name")
    else:
        pipeline_name = fields.name_length(parent.job_name, "run.facets.parent.job.name")
        fields.name_length(job_name, "job.name")
    if error_message is not None:
        error_message, with_full_text = fields.truncate_error_message(error_message, attributes)
        attributes = with_full_text or attributes
    return Event(
        # The event's own runId, also for a stage: its parent run may send the same
        # eventType at the same eventTime, and that is another event.
        event_id=derived_event_id(run_id, event_type, event_time.isoformat()),
        status=STATUS_BY_EVENT_TYPE[event_type],
        event_time=event_time,
        run_key=parent.run_id if parent else run_id,
        pipeline_name=pipeline_name,
        stage_name=job_name if parent else None,
        records_processed=records_processed,
        error_message=error_message,
        attributes=attributes,
    )


def _event_type(document: Mapping[Any, Any]) -> str:
    """Return `eventType`, which the ledger needs although the 2-0-x spec makes it optional.

    Without it the event says nothing about the run's state, so no status can be derived.
    """
    value = document.get("eventType")
    if value not in STATUS_BY_EVENT_TYPE:
        shown = "missing; expected" if value is None else f"{fields.shorten(repr(value))} is not"
        raise BadEventError("eventType", f"{shown} one of {', '.join(STATUS_BY_EVENT_TYPE)}")
    return str(value)


def _parent(facets: Mapping[str, Any]) -> _Parent | None:
    """Return the `parent` facet's run and job, or None for a run-level event."""
    if facets.get("parent") is None:
        return None
    facet = _object(facets, "parent", "run.facets.parent")
    run = _object(facet, "run", "run.facets.parent.run", required=True)
    job = _object(facet, "job", "run.facets.parent.job", required=True)
    return _Parent(
        run_id=_uuid(run, "runId", "run.facets.parent.run.runId"),
        job_name=fields.required_text(job.get("name"), "run.facets.parent.job.name"),
        job_namespace=fields.optional_text(job.get("namespace"), "run.facets.parent.job.namespace"),
    )


def _error(facets: Mapping[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """Return the `errorMessage` facet's message, and its other fields as attributes.

    The keys are the ones the API uses for a Python exception, so readers of attributes
    find a stack trace in the same place whichever way the event came in.
    """
    if facets.get("errorMessage") is None:
        return None, {}
    path = "run.facets.errorMessage"
    facet = _object(facets, "errorMessage", path)
    message = fields.required_text(facet.get("message"), f"{path}.message")
    details = {
        "stack_trace": fields.optional_text(facet.get("stackTrace"), f"{path}.stackTrace"),
        "programming_language": fields.optional_text(
            facet.get("programmingLanguage"), f"{path}.programmingLanguage"
        ),
    }
    return message, {key: value for key, value in details.items() if value is not None}


def _records_processed(document: Mapping[Any, Any]) -> int | None:
    """Sum `outputStatistics.rowCount` over the outputs that report it; None when none does.

    Only outputs count: what a job wrote is what it processed, whatever it read.
    """
    outputs = document.get("outputs")
    if outputs is None:
        return None
    if not isinstance(outputs, list):
        raise BadEventError("outputs", f"expected a JSON array, got {fields.json_type(outputs)}")
    row_counts: list[int] = []
    for index, output in enumerate(outputs):
        path = f"outputs[{index}]"
        if not isinstance(output, Mapping):
            raise BadEventError(path, f"expected a JSON object, got {fields.json_type(output)}")
        output_facets = _object(output, "outputFacets", f"{path}.outputFacets")
        path += ".outputFacets.outputStatistics"
        statistics = _object(output_facets, "outputStatistics", path)
        if statistics.get("rowCount") is not None:
            row_counts.append(_row_count(statistics["rowCount"], f"{path}.rowCount"))
    if not row_counts:
        return None
    total = sum(row_counts)
    if total > BIGINT_MAX:
        raise BadEventError(ROW_COUNT_PATH, f"the sum {total} is out of range (0 to {BIGINT_MAX})")
    return total


def _row_count(value: object, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadEventError(path, f"expected an integer, got {fields.json_type(value)}")
    if value < 0:
        raise BadEventError(path, f"{value} is negative")
    return value


def _provenance(
    document: Mapping[Any, Any],
    run_id: str,
    job: Mapping[str, Any],
    parent: _Parent | None,
    event_type: str,
) -> dict[str, str]:
    """Return what identifies the event in OpenLineage terms, absent values left out.

    The original eventType tells ABORT from FAIL and OTHER from RUNNING; the event's own
    runId is the only trace of a stage's run (run_key is its parent's). Datasets and
    facets are not copied: the ledger records runs, not lineage.
    """
    values = {
        "event_type": event_type,
        "run_id": run_id,
        "job_namespace": fields.optional_text(job.get("namespace"), "job.namespace"),
        "parent_job_namespace": parent.job_namespace if parent else None,
        "producer": fields.optional_text(document.get("producer"), "producer"),
        "schema_url": fields.optional_text(document.get("schemaURL"), "schemaURL"),
    }
    return {key: value for key, value in values.items() if value is not None}


def _object(
    container: Mapping[Any, Any], key: str, path: str, *, required: bool = False
) -> Mapping[str, Any]:
    """Return the JSON object at `key`; an absent or null optional one reads as empty."""
    value = container.get(key)
    if value is None:
        if required:
            raise BadEventError(path, "missing")
        return {}
    if not isinstance(value, Mapping):
        raise BadEventError(path, f"expected a JSON object, got {fields.json_type(value)}")
    return value


def _uuid(container: Mapping[str, Any], key: str, path: str) -> str:
    """Return a runId in canonical form, so a parent named in upper case is the same run."""
    value = fields.required_text(container.get(key), path)
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise BadEventError(path, f"{fields.shorten(value)!r} is not a UUID") from None
