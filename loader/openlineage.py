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
from loader.contract import (
    BIGINT_MAX,
    FIELDS,
    INTEGER_MAX,
    OPENLINEAGE_EVENT_ATTRIBUTE,
    OPENLINEAGE_PLACEMENT_ATTRIBUTE,
    Event,
    derived_event_id,
)
from loader.errors import BadEventError

# START and RUNNING say the run is alive. OTHER only adds metadata, often after the end;
# as `running` it can never reopen a finished run (the first terminal event is final).
# ABORT is `failed`; dbt reads the eventType kept in attributes to mark it aborted.
STATUS_BY_EVENT_TYPE = {
    "START": "running",
    "RUNNING": "running",
    "COMPLETE": "completed",
    "ABORT": "failed",
    "FAIL": "failed",
    "OTHER": "running",
}
# Where the loader put an event (`attributes.openlineage_placement`), for dbt: a run-level
# event, a stage event whose attempt dbt numbers by the order of the stage's runIds, one
# whose producer numbered its try, or activity under a stage (deeper than a stage).
RUN = "run"
STAGE = "stage"
STAGE_WITH_TRY_NUMBER = "stage_with_try_number"
ACTIVITY = "activity"
# An ABORT without a message: "stopped abnormally" is all the producer said.
ABORTED_MESSAGE = "aborted"
# The jobType of an orchestrated unit that is always a run of its own, whatever its parent
# (a DAG triggered by another DAG stays its own pipeline).
RUN_JOB_TYPES = frozenset({"DAG"})
# The summed rowCount of all outputs: no single output is to blame when the sum overflows.
ROW_COUNT_PATH = "outputs[].outputFacets.outputStatistics.rowCount"


@dataclass(frozen=True, slots=True)
class _RunReference:
    """A run named by the `parent` facet (or its `root`): its runId and job."""

    run_id: str
    job_name: str


@dataclass(frozen=True, slots=True)
class _Placement:
    """Where a RunEvent lands: the run it is recorded under, and its stage there."""

    run_key: str
    pipeline_name: str
    kind: str = RUN
    stage_name: str | None = None
    attempt: int = 1
    run_attempt: int = 1


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
    fields.required_name(job.get("name"), "job.name")
    # Kept whole in raw, and read there by dbt: the identifying strings must be strings.
    fields.optional_text(job.get("namespace"), "job.namespace")
    fields.optional_text(document.get("producer"), "producer")
    fields.optional_text(document.get("schemaURL"), "schemaURL")
    facets = _object(run, "facets", "run.facets")
    placement = _placement(run_id, job, facets)
    error_message, attributes = _error(facets)
    if event_type == "ABORT" and error_message is None:
        error_message = ABORTED_MESSAGE
    records_processed = _records_processed(document)
    attributes[OPENLINEAGE_EVENT_ATTRIBUTE] = fields.attributes(document, "RunEvent")
    attributes[OPENLINEAGE_PLACEMENT_ATTRIBUTE] = placement.kind
    if error_message is not None:
        error_message, with_full_text = fields.truncate_error_message(error_message, attributes)
        attributes = with_full_text or attributes
    return Event(
        # The event's own runId, also for a stage: its parent run may send the same
        # eventType at the same eventTime, and that is another event.
        event_id=derived_event_id(run_id, event_type, event_time.isoformat()),
        status=STATUS_BY_EVENT_TYPE[event_type],
        event_time=event_time,
        run_key=placement.run_key,
        pipeline_name=placement.pipeline_name,
        stage_name=placement.stage_name,
        records_processed=records_processed,
        error_message=error_message,
        attempt=placement.attempt,
        run_attempt=placement.run_attempt,
        attributes=attributes,
    )


def _placement(run_id: str, job: Mapping[str, Any], facets: Mapping[str, Any]) -> _Placement:
    """Apply the contract's placement rules, first match wins (docs/event-contract.md).

    Each rule reads the event alone, so an event lands in the same place whatever arrived
    before it; dbt then resolves what needs the whole tree (retries by runId, activity).
    """
    job_name = str(job["name"])
    dag_run = _object(
        _object(facets, "airflowDagRun", "run.facets.airflowDagRun"),
        "dagRun",
        "run.facets.airflowDagRun.dagRun",
    )
    if dag_run:
        return _airflow_placement(job, dag_run, "run.facets.airflowDagRun.dagRun", None)
    airflow = _object(facets, "airflow", "run.facets.airflow")
    if airflow.get("dagRun") is not None and airflow.get("taskInstance") is not None:
        return _airflow_placement(
            job,
            _object(airflow, "dagRun", "run.facets.airflow.dagRun"),
            "run.facets.airflow.dagRun",
            airflow,
        )
    parent = _reference(facets, "parent", "run.facets.parent")
    if parent is None or _job_type(job) in RUN_JOB_TYPES:
        return _Placement(run_key=run_id, pipeline_name=job_name)
    root = _reference(
        _object(facets, "parent", "run.facets.parent"), "root", "run.facets.parent.root"
    )
    if root is not None and root.run_id not in (parent.run_id, run_id):
        # Deeper than a stage (a SQL statement under a dbt node, dbt inside an Airflow
        # task): recorded under the root as activity of the stage named by the parent.
        return _Placement(
            run_key=root.run_id,
            pipeline_name=root.job_name,
            kind=ACTIVITY,
            stage_name=parent.job_name,
        )
    return _Placement(
        run_key=parent.run_id, pipeline_name=parent.job_name, kind=STAGE, stage_name=job_name
    )


def _airflow_placement(
    job: Mapping[str, Any],
    dag_run: Mapping[str, Any],
    path: str,
    task: Mapping[str, Any] | None,
) -> _Placement:
    """An Airflow DAG run is its namespace, DAG id and run_id, whatever its clear number.

    Clearing a task gives the DAG run a new OpenLineage runId; the re-run is the same run's
    next attempt. A task's try number is its attempt; a mapped instance is a stage of its own.
    """
    dag_id = fields.required_name(dag_run.get("dag_id"), f"{path}.dag_id")
    airflow_run_id = fields.required_text(dag_run.get("run_id"), f"{path}.run_id")
    clear_number = fields.optional_integer(
        dag_run.get("clear_number"), f"{path}.clear_number", minimum=0, maximum=INTEGER_MAX - 1
    )
    namespace = fields.optional_text(job.get("namespace"), "job.namespace") or ""
    run_key = fields.required_name(f"{namespace}/{dag_id}/{airflow_run_id}", f"{path}.run_id")
    run_attempt = (clear_number or 0) + 1
    if task is None:
        return _Placement(run_key=run_key, pipeline_name=dag_id, run_attempt=run_attempt)
    instance = _object(task, "taskInstance", "run.facets.airflow.taskInstance")
    instance_path = "run.facets.airflow.taskInstance"
    try_number = fields.optional_integer(
        instance.get("try_number"), f"{instance_path}.try_number", minimum=1, maximum=INTEGER_MAX
    )
    map_index = fields.optional_integer(
        instance.get("map_index"), f"{instance_path}.map_index", minimum=-1, maximum=INTEGER_MAX
    )
    stage_name = str(job["name"])
    if map_index is not None and map_index >= 0:  # Airflow writes -1 for an unmapped task
        stage_name = f"{stage_name}[{map_index}]"
    return _Placement(
        run_key=run_key,
        pipeline_name=dag_id,
        kind=STAGE if try_number is None else STAGE_WITH_TRY_NUMBER,
        stage_name=fields.required_name(stage_name, "job.name"),
        attempt=try_number or 1,
        run_attempt=run_attempt,
    )


def _job_type(job: Mapping[str, Any]) -> str | None:
    """The `jobType` facet's jobType (DAG, TASK, JOB, MODEL, ...), when the producer sent it."""
    job_facets = _object(job, "facets", "job.facets")
    job_type = _object(job_facets, "jobType", "job.facets.jobType")
    return fields.optional_text(job_type.get("jobType"), "job.facets.jobType.jobType")


def _event_type(document: Mapping[Any, Any]) -> str:
    """Return `eventType`, which the ledger needs although the 2-0-x spec makes it optional.

    Without it the event says nothing about the run's state, so no status can be derived.
    """
    value = document.get("eventType")
    if value not in STATUS_BY_EVENT_TYPE:
        shown = "missing; expected" if value is None else f"{fields.shorten(repr(value))} is not"
        raise BadEventError("eventType", f"{shown} one of {', '.join(STATUS_BY_EVENT_TYPE)}")
    return str(value)


def _reference(container: Mapping[str, Any], key: str, path: str) -> _RunReference | None:
    """Return the run and job of a `parent` facet (or of its `root`), or None when absent."""
    if container.get(key) is None:
        return None
    facet = _object(container, key, path)
    run = _object(facet, "run", f"{path}.run", required=True)
    job = _object(facet, "job", f"{path}.job", required=True)
    fields.optional_text(job.get("namespace"), f"{path}.job.namespace")
    return _RunReference(
        run_id=_uuid(run, "runId", f"{path}.run.runId"),
        job_name=fields.required_name(job.get("name"), f"{path}.job.name"),
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
