"""OpenLineage RunEvents (spec 2-0-x) as contract events.

This is the mapping of the contract's "OpenLineage RunEvents" section. A RunEvent is
checked only as far as the ledger reads it, then validated by `parse_event` like any
native event, so both formats obey the same limits. Every failure names the field by its
OpenLineage path (`run.runId: missing`): the producer speaks OpenLineage, not our contract.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from loader.errors import BadEventError
from loader.events import (
    FIELDS,
    Event,
    _event_time,
    _json_type,
    _optional_text,
    _shorten,
    derived_event_id,
    parse_event,
)

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
_BIGINT_MAX = 2**63 - 1


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
    """Map a RunEvent onto the contract and validate the result into an Event.

    Raise BadEventError naming the first field that breaks it, by its OpenLineage path.
    """
    event_type = _event_type(document)
    with _reported_as("eventTime"):
        event_time = _event_time({"event_time": document.get("eventTime")})
    run = _object(document, "run", "run", required=True)
    run_id = _uuid(run, "runId", "run.runId")
    job = _object(document, "job", "job", required=True)
    job_name = _required_string(job, "name", "job.name")
    facets = _object(run, "facets", "run.facets")
    parent = _parent(facets)
    error_message, error_attributes = _error(facets)
    native = {
        # The event's own runId, also for a stage: its parent run may send the same
        # eventType at the same eventTime, and that is another event.
        "event_id": derived_event_id(run_id, event_type, event_time.isoformat()),
        "run_key": parent.run_id if parent else run_id,
        "pipeline_name": parent.job_name if parent else job_name,
        "stage_name": job_name if parent else None,
        "status": STATUS_BY_EVENT_TYPE[event_type],
        "event_time": event_time,
        "records_processed": _records_processed(document),
        "error_message": error_message,
        "attributes": {
            ATTRIBUTES_KEY: _provenance(document, run_id, job, parent, event_type),
            **error_attributes,
        },
    }
    # parse_event reports native field names; say where each value came from instead.
    paths = {
        "run_key": "run.facets.parent.run.runId" if parent else "run.runId",
        "pipeline_name": "run.facets.parent.job.name" if parent else "job.name",
        "stage_name": "job.name",
        "error_message": "run.facets.errorMessage.message",
    }
    try:
        return parse_event(native)
    except BadEventError as error:
        raise BadEventError(paths.get(error.field or "", error.field), error.reason) from None


def _event_type(document: Mapping[Any, Any]) -> str:
    """Return `eventType`, which the ledger needs although the 2-0-x spec makes it optional.

    Without it the event says nothing about the run's state, so no status can be derived.
    """
    value = document.get("eventType")
    if value not in STATUS_BY_EVENT_TYPE:
        shown = "missing; expected" if value is None else f"{_shorten(repr(value))} is not"
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
        job_name=_required_string(job, "name", "run.facets.parent.job.name"),
        job_namespace=_optional_text(job, "namespace", "run.facets.parent.job.namespace"),
    )


def _error(facets: Mapping[str, Any]) -> tuple[str | None, dict[str, str]]:
    """Return the `errorMessage` facet's message, and its other fields as attributes.

    The keys are the ones the API uses for a Python exception, so readers of attributes
    find a stack trace in the same place whichever way the event came in.
    """
    if facets.get("errorMessage") is None:
        return None, {}
    path = "run.facets.errorMessage"
    facet = _object(facets, "errorMessage", path)
    message = _required_string(facet, "message", f"{path}.message")
    details = {
        "stack_trace": _optional_text(facet, "stackTrace", f"{path}.stackTrace"),
        "programming_language": _optional_text(
            facet, "programmingLanguage", f"{path}.programmingLanguage"
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
        raise BadEventError("outputs", f"expected a JSON array, got {_json_type(outputs)}")
    row_counts: list[int] = []
    for index, output in enumerate(outputs):
        path = f"outputs[{index}]"
        if not isinstance(output, Mapping):
            raise BadEventError(path, f"expected a JSON object, got {_json_type(output)}")
        output_facets = _object(output, "outputFacets", f"{path}.outputFacets")
        path += ".outputFacets.outputStatistics"
        statistics = _object(output_facets, "outputStatistics", path)
        if statistics.get("rowCount") is not None:
            row_counts.append(_row_count(statistics["rowCount"], f"{path}.rowCount"))
    if not row_counts:
        return None
    total = sum(row_counts)
    if total > _BIGINT_MAX:
        raise BadEventError(ROW_COUNT_PATH, f"the sum {total} is out of range (0 to {_BIGINT_MAX})")
    return total


def _row_count(value: object, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadEventError(path, f"expected an integer, got {_json_type(value)}")
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
        "job_namespace": _optional_text(job, "namespace", "job.namespace"),
        "parent_job_namespace": parent.job_namespace if parent else None,
        "producer": _optional_text(document, "producer", "producer"),
        "schema_url": _optional_text(document, "schemaURL", "schemaURL"),
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
        raise BadEventError(path, f"expected a JSON object, got {_json_type(value)}")
    return value


def _required_string(container: Mapping[str, Any], key: str, path: str) -> str:
    value = _optional_text(container, key, path)
    if value is None:
        raise BadEventError(path, "missing")
    return value


def _uuid(container: Mapping[str, Any], key: str, path: str) -> str:
    """Return a runId in canonical form, so a parent named in upper case is the same run."""
    value = _required_string(container, key, path)
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise BadEventError(path, f"{_shorten(value)!r} is not a UUID") from None


@contextmanager
def _reported_as(path: str) -> Iterator[None]:
    """Re-raise a native check's BadEventError under the OpenLineage path of its value."""
    try:
        yield
    except BadEventError as error:
        raise BadEventError(path, error.reason) from None
