"""The contract's "OpenLineage RunEvents" section: the mapping, then ingest and dbt end to end.

Events are built as the OpenLineage 2-0-2 JSON schema describes a RunEvent, with the
parent, errorMessage and outputStatistics facets.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from loader.batch import LoadResult
from loader.connection import Connection
from loader.contract import Event, derived_event_id
from loader.errors import BadEventError
from loader.events import parse_event, parse_line
from loader.ingest import ingest_stream
from tests.support import BUILD_LEDGER_TABLES, jsonl, query

T0 = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
SOURCE = "lineage.jsonl"
PRODUCER = "https://github.com/apache/airflow/tree/providers-openlineage/2.1.0"
RUN_EVENT_SCHEMA_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
NAMESPACE = "airflow-prod"
WAREHOUSE = "postgres://warehouse:5432"
EVENT_TYPES = "START, RUNNING, COMPLETE, ABORT, FAIL, OTHER"
ERROR_LIMIT = 8192
RunDbt = Callable[..., None]  # the run_dbt fixture

DAG = "daily_sales"
DAG_RUN = "0192f1c6-5d3e-7a10-9b2c-3d4e5f607181"


def task_run(job_name: str, dag_run: str = DAG_RUN) -> str:
    """A fixed runId for a task of a DAG run: the same in every event of that task."""
    return str(uuid.uuid5(uuid.UUID(dag_run), job_name))


def at(minute: float) -> datetime:
    return T0 + timedelta(minutes=minute)


def facet(name: str, version: str, **fields: Any) -> dict[str, Any]:
    """A facet with the _producer and _schemaURL every facet must carry."""
    schema_url = f"https://openlineage.io/spec/facets/{version}/{name}.json#/$defs/{name}"
    return {"_producer": PRODUCER, "_schemaURL": schema_url, **fields}


def output(name: str, row_count: int | None) -> dict[str, Any]:
    """An output dataset, with an outputStatistics facet when `row_count` is given."""
    dataset: dict[str, Any] = {"namespace": WAREHOUSE, "name": name, "facets": {}}
    if row_count is not None:
        statistics = facet(
            "OutputStatisticsOutputDatasetFacet", "1-0-2", rowCount=row_count, size=row_count * 64
        )
        dataset["outputFacets"] = {"outputStatistics": statistics}
    return dataset


def run_event(
    event_type: str,
    job_name: str,
    *,
    minute: float = 0,
    run_id: str | None = None,
    parent: tuple[str, str] | None = None,
    row_counts: Iterable[int | None] = (),
    error: str | None = None,
    stack_trace: str | None = None,
) -> dict[str, Any]:
    """A RunEvent of `job_name`; with `parent` (runId, job name) it is a task of that run."""
    run_facets: dict[str, Any] = {}
    if parent is not None:
        parent_run_id, parent_job = parent
        run_facets["parent"] = facet(
            "ParentRunFacet",
            "1-1-0",
            run={"runId": parent_run_id},
            job={"namespace": NAMESPACE, "name": parent_job},
        )
    if error is not None:
        details = {"stackTrace": stack_trace} if stack_trace is not None else {}
        run_facets["errorMessage"] = facet(
            "ErrorMessageRunFacet", "1-0-1", message=error, programmingLanguage="PYTHON", **details
        )
    return {
        "eventTime": at(minute).isoformat().replace("+00:00", "Z"),
        "producer": PRODUCER,
        "schemaURL": RUN_EVENT_SCHEMA_URL,
        "eventType": event_type,
        "run": {"runId": run_id or DAG_RUN, "facets": run_facets},
        "job": {"namespace": NAMESPACE, "name": job_name, "facets": {}},
        "inputs": [{"namespace": WAREHOUSE, "name": "raw.orders", "facets": {}}],
        "outputs": [
            output(f"analytics.{job_name}_{index}", count) for index, count in enumerate(row_counts)
        ],
    }


def dag_event(event_type: str, *, minute: float, **fields: Any) -> dict[str, Any]:
    """A run-level event of the DAG run."""
    return run_event(event_type, DAG, minute=minute, **fields)


def task_event(event_type: str, task: str, *, minute: float, **fields: Any) -> dict[str, Any]:
    """An event of one task of the DAG run: a stage event."""
    job_name = f"{DAG}.{task}"
    return run_event(
        event_type,
        job_name,
        minute=minute,
        run_id=task_run(job_name),
        parent=(DAG_RUN, DAG),
        **fields,
    )


def kept(document: dict[str, Any], placement: str) -> dict[str, Any]:
    """The attributes the loader writes for a RunEvent: all of it, and where it went."""
    return {"openlineage": document, "openlineage_placement": placement}


# --- the mapping, without the database -------------------------------------------------


@pytest.mark.parametrize(
    ("event_type", "status"),
    [
        ("START", "running"),
        ("RUNNING", "running"),
        ("OTHER", "running"),
        ("COMPLETE", "completed"),
        ("FAIL", "failed"),
        ("ABORT", "failed"),
    ],
)
def test_a_run_level_event_maps_each_event_type_to_a_status(event_type: str, status: str) -> None:
    document = dag_event(event_type, minute=5)
    event = parse_event(document)

    assert event == Event(
        event_id=derived_event_id(DAG_RUN, event_type, "2026-01-01T10:05:00+00:00"),
        status=status,
        event_time=at(5),
        run_key=DAG_RUN,
        pipeline_name=DAG,
        error_message="aborted" if event_type == "ABORT" else None,
        attributes=kept(document, "run"),
    )


@pytest.mark.parametrize("event_type", ["START", "RUNNING", "OTHER", "COMPLETE", "FAIL", "ABORT"])
def test_an_event_with_a_parent_is_a_stage_of_the_parent_run(event_type: str) -> None:
    job_name = f"{DAG}.extract"

    document = task_event(event_type, "extract", minute=2)
    event = parse_event(document)

    own_run = task_run(job_name)
    assert (event.run_key, event.pipeline_name, event.stage_name) == (DAG_RUN, DAG, job_name)
    assert event.event_id == derived_event_id(own_run, event_type, "2026-01-01T10:02:00+00:00")
    assert event.attributes == kept(document, "stage")


def test_the_event_id_is_the_same_for_the_same_instant_in_another_offset() -> None:
    in_utc = dag_event("COMPLETE", minute=5)
    in_paris = {**in_utc, "eventTime": "2026-01-01T11:05:00+01:00"}
    upper_case_run_id = {**in_utc, "run": {"runId": DAG_RUN.upper()}}

    ids = {parse_event(document).event_id for document in (in_utc, in_paris, upper_case_run_id)}

    assert len(ids) == 1
    assert parse_event(dag_event("FAIL", minute=5)).event_id not in ids
    assert parse_event(dag_event("COMPLETE", minute=6)).event_id not in ids


def test_a_fail_keeps_its_message_and_puts_the_stack_trace_in_attributes() -> None:
    trace = 'Traceback (most recent call last):\n  File "transform.py", line 9\nKeyError: "sku"'

    document = task_event("FAIL", "transform", minute=4, error="KeyError: 'sku'", stack_trace=trace)
    event = parse_event(document)

    assert (event.status, event.error_message) == ("failed", "KeyError: 'sku'")
    assert event.attributes == {
        **kept(document, "stage"),
        "stack_trace": trace,
        "programming_language": "PYTHON",
    }


def test_a_long_error_message_is_truncated_like_a_native_one() -> None:
    message = "é" * ERROR_LIMIT  # 2 bytes each

    event = parse_event(dag_event("FAIL", minute=1, error=message))

    assert event.error_message == "é" * (ERROR_LIMIT // 2)
    assert event.attributes is not None
    assert event.attributes["error_message_full"] == message
    assert event.attributes["programming_language"] == "PYTHON"


@pytest.mark.parametrize(
    ("row_counts", "records"),
    [
        pytest.param([120, 80, 0], 200, id="summed"),
        pytest.param([None, 7, None], 7, id="outputs-without-statistics-skipped"),
        pytest.param([None, None], None, id="no-statistics-is-null"),
        pytest.param([], None, id="no-outputs-is-null"),
    ],
)
def test_records_processed_is_the_sum_of_the_outputs_row_counts(
    row_counts: list[int | None], records: int | None
) -> None:
    document = dag_event("COMPLETE", minute=1, row_counts=row_counts)

    assert parse_event(document).records_processed == records


def test_a_row_count_statistics_facet_without_row_count_is_skipped() -> None:
    document = dag_event("COMPLETE", minute=1, row_counts=[5])
    document["outputs"].append(
        {"namespace": WAREHOUSE, "name": "analytics.empty", "outputFacets": {}}
    )
    document["outputs"][0]["outputFacets"]["outputStatistics"].pop("size")

    assert parse_event(document).records_processed == 5


def test_parse_line_detects_openlineage_and_native_lines() -> None:
    openlineage_line = json.dumps(task_event("COMPLETE", "load", minute=3, row_counts=[9]))
    native_line = json.dumps(
        {"run_key": "r-1", "pipeline_name": "p", "status": "running", "event_time": "2026-01-01Z"}
    )

    from_openlineage = parse_line(openlineage_line.encode())
    with pytest.raises(BadEventError, match="event_time: '2026-01-01Z' is not an ISO 8601"):
        parse_line(native_line.encode())
    native = parse_line(native_line.replace("2026-01-01Z", "2026-01-01T10:00:00Z").encode())

    assert (from_openlineage.stage_name, from_openlineage.records_processed) == (f"{DAG}.load", 9)
    assert (native.run_key, native.attributes) == ("r-1", None)


def test_a_document_with_a_native_field_stays_native() -> None:
    """Unknown-field errors of native events read as they did before OpenLineage."""
    native_with_stray_keys = {
        "run_key": "r-1",
        "status": "running",
        "event_time": "2026-01-01T10:00:00Z",
        "eventType": "START",
        "run": {"runId": DAG_RUN},
        "job": {"namespace": NAMESPACE, "name": DAG},
    }

    with pytest.raises(BadEventError) as raised:
        parse_event(native_with_stray_keys)

    assert str(raised.value) == "eventType: unknown field"


def _changed(document: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of `document` with the value at dotted `path` replaced (... removes it)."""
    copy = json.loads(json.dumps(document))
    *parents, last = (int(key) if key.isdigit() else key for key in path.split("."))
    target = copy
    for key in parents:
        target = target[key]
    if value is ...:
        del target[last]
    else:
        target[last] = value
    return copy


GOOD_TASK = task_event("COMPLETE", "load", minute=3, row_counts=[4, 5], error="late warning")
# (path changed in GOOD_TASK, new value or ... to remove it, the whole expected error)
BAD_EVENTS = [
    ("run.runId", ..., "run.runId: missing"),
    ("run.runId", 17, "run.runId: expected a string, got number"),
    ("run.runId", "run-17", "run.runId: 'run-17' is not a UUID"),
    ("run", ..., "run: missing"),
    ("run", [], "run: expected a JSON object, got array"),
    ("run.facets", "parent", "run.facets: expected a JSON object, got string"),
    ("eventType", ..., f"eventType: missing; expected one of {EVENT_TYPES}"),
    ("eventType", "DONE", f"eventType: 'DONE' is not one of {EVENT_TYPES}"),
    ("eventType", "complete", f"eventType: 'complete' is not one of {EVENT_TYPES}"),
    ("eventTime", ..., "eventTime: missing; an ISO 8601 timestamp with offset is required"),
    ("eventTime", "2026-01-01T10:03:00", "eventTime: '2026-01-01T10:03:00' has no UTC offset"),
    ("eventTime", "soon", "eventTime: 'soon' is not an ISO 8601 timestamp"),
    ("job.name", ..., "job.name: missing"),
    ("job.name", "x" * 201, "job.name: must be 1 to 200 characters, got 201"),
    ("job.name", "", "job.name: must be 1 to 200 characters, got 0"),
    ("job.namespace", 3, "job.namespace: expected a string, got number"),
    ("run.facets.parent.run.runId", ..., "run.facets.parent.run.runId: missing"),
    ("run.facets.parent.run.runId", "dag", "run.facets.parent.run.runId: 'dag' is not a UUID"),
    ("run.facets.parent.job.name", ..., "run.facets.parent.job.name: missing"),
    (
        "run.facets.parent.job.name",
        "",
        "run.facets.parent.job.name: must be 1 to 200 characters, got 0",
    ),
    ("run.facets.parent.job", ..., "run.facets.parent.job: missing"),
    ("run.facets.parent", True, "run.facets.parent: expected a JSON object, got boolean"),
    ("run.facets.errorMessage.message", ..., "run.facets.errorMessage.message: missing"),
    (
        "run.facets.errorMessage.message",
        "bad\x00byte",
        "run.facets.errorMessage.message: contains a NUL character",
    ),
    (
        "run.facets.errorMessage.stackTrace",
        "\ud800",
        "run.facets.errorMessage.stackTrace: contains an unpaired UTF-16 surrogate escape",
    ),
    ("producer", 1, "producer: expected a string, got number"),
    ("outputs", {}, "outputs: expected a JSON array, got object"),
    ("outputs.1", "analytics.x", "outputs[1]: expected a JSON object, got string"),
    (
        "outputs.1.outputFacets.outputStatistics.rowCount",
        "12",
        "outputs[1].outputFacets.outputStatistics.rowCount: expected an integer, got string",
    ),
    (
        "outputs.0.outputFacets.outputStatistics.rowCount",
        -1,
        "outputs[0].outputFacets.outputStatistics.rowCount: -1 is negative",
    ),
    (
        "outputs.0.outputFacets.outputStatistics.rowCount",
        2**63,
        f"outputs[].outputFacets.outputStatistics.rowCount: the sum {2**63 + 5} is out of "
        f"range (0 to {2**63 - 1})",
    ),
]


@pytest.mark.parametrize(
    ("path", "value", "message"), BAD_EVENTS, ids=[f"{p}={v!r}"[:60] for p, v, _ in BAD_EVENTS]
)
def test_a_bad_runevent_names_the_field_by_its_openlineage_path(
    path: str, value: Any, message: str
) -> None:
    assert parse_event(GOOD_TASK).stage_name == f"{DAG}.load"  # the base case is good

    with pytest.raises(BadEventError) as raised:
        parse_event(_changed(GOOD_TASK, path, value))

    assert str(raised.value).startswith(message)
    assert raised.value.field == message.split(":", 1)[0]


# --- through ingest and dbt ------------------------------------------------------------

PIPELINES_SQL = """
select run_key, pipeline_name, status, created_at, completed_at, records_processed,
    error_message
from public.pipelines
order by run_key
"""
STAGES_SQL = """
select pipelines.run_key, stages.stage_name, stages.status, stages.started_at,
    stages.completed_at, stages.records_processed, stages.error_message, stages.attempts
from public.pipeline_stages as stages
inner join public.pipelines on stages.pipeline_id = pipelines.id
order by pipelines.run_key, stages.stage_name
"""


def ingest(conn: Connection, data: bytes) -> LoadResult:
    return ingest_stream(conn, io.BytesIO(data), source=SOURCE)


def pipelines(conn: Connection) -> dict[str, dict[str, Any]]:
    return {row.pop("run_key"): row for row in query(conn, PIPELINES_SQL)}


def stages(conn: Connection, run_key: str = DAG_RUN) -> dict[str, dict[str, Any]]:
    rows = query(conn, STAGES_SQL)
    return {row.pop("stage_name"): row for row in rows if row.pop("run_key") == run_key}


def successful_dag() -> list[dict[str, Any]]:
    """A DAG run of three tasks, each writing some outputs, then the DAG completes."""
    return [
        dag_event("START", minute=0),
        task_event("START", "extract", minute=1),
        task_event("COMPLETE", "extract", minute=3, row_counts=[120, 80]),
        task_event("START", "transform", minute=3),
        task_event("COMPLETE", "transform", minute=6, row_counts=[150]),
        task_event("START", "load", minute=6),
        task_event("RUNNING", "load", minute=7, row_counts=[50]),
        task_event("COMPLETE", "load", minute=9, row_counts=[100, 40, None]),
        dag_event("COMPLETE", minute=10),
    ]


def stage_row(
    status: str, started: float, completed: float | None, records: int | None, error: str | None
) -> dict[str, Any]:
    return {
        "status": status,
        "started_at": at(started),
        "completed_at": None if completed is None else at(completed),
        "records_processed": records,
        "error_message": error,
        "attempts": 1,
    }


def test_a_parent_run_with_several_child_jobs_derives_a_pipeline_and_its_stages(
    db: Connection, run_dbt: RunDbt
) -> None:
    result = ingest(db, jsonl(successful_dag()))
    run_dbt(*BUILD_LEDGER_TABLES)

    assert (result.accepted, result.duplicates, result.rejected) == (9, 0, 0)
    assert pipelines(db) == {
        DAG_RUN: {
            "pipeline_name": DAG,
            "status": "completed",
            "created_at": at(0),
            "completed_at": at(10),
            "records_processed": 140,  # the output of the last stage to complete
            "error_message": None,
        }
    }
    assert stages(db) == {
        f"{DAG}.extract": stage_row("completed", 1, 3, 200, None),
        f"{DAG}.transform": stage_row("completed", 3, 6, 150, None),
        f"{DAG}.load": stage_row("completed", 6, 9, 140, None),
    }


def test_a_failed_child_job_fails_its_stage_and_names_itself_in_the_run_error(
    db: Connection, run_dbt: RunDbt
) -> None:
    trace = 'Traceback (most recent call last):\n  File "transform.py", line 9\nKeyError: "sku"'
    failure = task_event(
        "FAIL", "transform", minute=4, error="KeyError: 'sku'", stack_trace=trace, row_counts=[3]
    )
    events = [
        dag_event("START", minute=0),
        task_event("START", "extract", minute=1),
        task_event("COMPLETE", "extract", minute=2, row_counts=[10]),
        task_event("START", "transform", minute=2),
        failure,
        dag_event("FAIL", minute=5),
    ]

    assert ingest(db, jsonl(events)).accepted == 6
    run_dbt(*BUILD_LEDGER_TABLES)

    assert pipelines(db)[DAG_RUN]["status"] == "failed"
    assert pipelines(db)[DAG_RUN]["error_message"] == f"{DAG}.transform: KeyError: 'sku'"
    assert stages(db)[f"{DAG}.transform"] == stage_row("failed", 2, 4, 3, "KeyError: 'sku'")
    [stored] = query(
        db,
        "select error_message, attributes from raw.run_events where event_id = %s",
        [parse_event(failure).event_id],
    )
    assert stored == {
        "error_message": "KeyError: 'sku'",
        "attributes": {
            **kept(failure, "stage"),
            "stack_trace": trace,
            "programming_language": "PYTHON",
        },
    }


def test_abort_fails_and_a_late_other_changes_nothing(db: Connection, run_dbt: RunDbt) -> None:
    aborted_run = "0192f1c6-5d3e-7a10-9b2c-000000000002"
    aborted_task = f"{DAG}.extract"
    events = [
        # A DAG run whose only task is aborted, then the DAG run itself.
        run_event("START", DAG, minute=0, run_id=aborted_run),
        run_event(
            "START", aborted_task, minute=1, run_id=task_run(aborted_task, aborted_run),
            parent=(aborted_run, DAG),
        ),
        run_event(
            "ABORT", aborted_task, minute=2, run_id=task_run(aborted_task, aborted_run),
            parent=(aborted_run, DAG),
        ),
        run_event("ABORT", DAG, minute=3, run_id=aborted_run),
        # A DAG run that completes; OTHER events add metadata after the end of both.
        dag_event("START", minute=0),
        task_event("START", "load", minute=1),
        task_event("COMPLETE", "load", minute=2, row_counts=[5]),
        dag_event("COMPLETE", minute=3),
        task_event("OTHER", "load", minute=4, row_counts=[99]),
        dag_event("OTHER", minute=5),
    ]  # fmt: skip

    assert ingest(db, jsonl(events)).accepted == 10
    run_dbt(*BUILD_LEDGER_TABLES)

    runs = pipelines(db)
    assert (runs[aborted_run]["status"], runs[aborted_run]["completed_at"]) == ("failed", at(3))
    assert runs[aborted_run]["error_message"] == "aborted"  # the producer said no more
    assert stages(db, aborted_run) == {aborted_task: stage_row("failed", 1, 2, None, "aborted")}
    assert runs[DAG_RUN] == {
        "pipeline_name": DAG,
        "status": "completed",
        "created_at": at(0),
        "completed_at": at(3),
        "records_processed": 5,
        "error_message": None,
    }
    assert stages(db) == {f"{DAG}.load": stage_row("completed", 1, 2, 5, None)}


def test_a_replayed_file_counts_each_event_once_and_changes_no_table(
    db: Connection, run_dbt: RunDbt
) -> None:
    data = jsonl(successful_dag())
    first = ingest(db, data)
    run_dbt(*BUILD_LEDGER_TABLES)
    before = (pipelines(db), stages(db), query(db, "select * from raw.run_events order by 1"))

    again = ingest(db, data)
    run_dbt(*BUILD_LEDGER_TABLES)

    assert (first.accepted, first.duplicates) == (9, 0)
    assert (again.accepted, again.duplicates, again.rejected) == (0, 9, 0)
    assert (pipelines(db), stages(db), query(db, "select * from raw.run_events order by 1")) == (
        before
    )
    assert before[0][DAG_RUN]["status"] == "completed"


def test_a_mixed_file_of_native_and_openlineage_lines_lands_whole(
    db: Connection, run_dbt: RunDbt
) -> None:
    native_run = {"run_key": "cron-2026-01-01", "pipeline_name": "hourly_sync"}
    events = [
        {**native_run, "status": "running", "event_time": at(0).isoformat()},
        *successful_dag(),
        {**native_run, "stage_name": "copy", "status": "completed", "event_time": at(2).isoformat(),
         "records_processed": 12},
        {**native_run, "status": "completed", "event_time": at(3).isoformat()},
        # A native stage event on the OpenLineage run: run_key is the DAG's runId.
        {"run_key": DAG_RUN, "stage_name": "notify", "status": "completed",
         "event_time": at(11).isoformat(), "records_processed": 1},
    ]  # fmt: skip

    result = ingest(db, jsonl(events))
    run_dbt(*BUILD_LEDGER_TABLES)

    assert (result.accepted, result.rejected) == (13, 0)
    runs = pipelines(db)
    assert set(runs) == {DAG_RUN, "cron-2026-01-01"}
    assert (runs["cron-2026-01-01"]["status"], runs["cron-2026-01-01"]["records_processed"]) == (
        "completed",
        12,
    )
    # The native stage completed last, so its records are the run's (rule 3).
    assert (runs[DAG_RUN]["status"], runs[DAG_RUN]["records_processed"]) == ("completed", 1)
    assert set(stages(db)) == {f"{DAG}.extract", f"{DAG}.transform", f"{DAG}.load", "notify"}
    assert stages(db)["notify"]["completed_at"] == at(11)


def test_bad_openlineage_lines_are_quarantined_with_their_path_while_good_lines_land(
    db: Connection, run_dbt: RunDbt
) -> None:
    good = successful_dag()
    no_run_id = _changed(task_event("START", "audit", minute=2), "run.runId", ...)
    done = {**task_event("COMPLETE", "audit", minute=3), "eventType": "DONE"}
    naive = {**task_event("START", "audit", minute=2), "eventTime": "2026-01-01T10:02:00"}
    nameless_parent = _changed(
        task_event("START", "audit", minute=2), "run.facets.parent.job.name", ...
    )
    text_rows = _changed(
        task_event("COMPLETE", "audit", minute=3, row_counts=[1]),
        "outputs.0.outputFacets.outputStatistics.rowCount",
        "12",
    )
    stray_native_field = {**dag_event("RUNNING", minute=2), "status": "running"}
    bad = {
        2: (no_run_id, "run.runId: missing"),
        4: (done, f"eventType: 'DONE' is not one of {EVENT_TYPES}"),
        5: (naive, "eventTime: '2026-01-01T10:02:00' has no UTC offset (add Z or +HH:MM)"),
        7: (nameless_parent, "run.facets.parent.job.name: missing"),
        9: (
            text_rows,
            "outputs[0].outputFacets.outputStatistics.rowCount: expected an integer, got string",
        ),
        10: (stray_native_field, "eventTime: unknown field"),
    }
    lines = [json.dumps(document).encode() for document in good]
    for number in sorted(bad):
        lines.insert(number - 1, json.dumps(bad[number][0]).encode())

    result = ingest(db, b"\n".join(lines) + b"\n")
    run_dbt(*BUILD_LEDGER_TABLES)

    assert (result.accepted, result.duplicates, result.rejected) == (9, 0, 6)
    rows = query(
        db, "select origin, line_number, reason, raw_line from raw.quarantined_events order by 2"
    )
    assert [(row["line_number"], row["reason"]) for row in rows] == [
        (number, reason) for number, (_, reason) in sorted(bad.items())
    ]
    assert {row["origin"] for row in rows} == {SOURCE}
    assert [bytes(row["raw_line"]) for row in rows] == [lines[number - 1] for number in sorted(bad)]
    assert pipelines(db)[DAG_RUN]["status"] == "completed"
    assert set(stages(db)) == {f"{DAG}.extract", f"{DAG}.transform", f"{DAG}.load"}
