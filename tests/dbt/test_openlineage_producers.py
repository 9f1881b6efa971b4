"""Real producers' RunEvents give exactly the rows the contract's OpenLineage section says.

The events are the files dbt-ol 1.54 and Airflow 3.3.2 wrote (`tests/data/openlineage/`,
with how each was made). Every file is loaded into one database and built once; the
tests read their scenario's rows from it. Tests of arrival order build on their own.
"""

from __future__ import annotations

import gzip
import io
import json
import random
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from loader.connection import Connection, connect, drop_database, recreate_database
from loader.ingest import ingest_stream
from loader.roles import create_roles
from loader.schema import create_raw_schema
from loader.settings import Settings
from tests.support import dbt, query

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "openlineage"
EVERY_FILE = sorted(path.relative_to(FIXTURES).as_posix() for path in FIXTURES.rglob("*.jsonl*"))
# The runs the dbt files describe: the wrapper job's runId (no parent), or what
# OPENLINEAGE_PARENT_ID / OPENLINEAGE_ROOT_PARENT_ID named (dbt/make_events.sh).
DBT_BUILD = "01a22a8e-0a6e-7715-a686-af66b14e2036"
DBT_BUILD_FAILING = "01a22a8e-3186-7047-842f-a2a29f0985af"
DBT_STRUCTURED = "01a22a8e-6478-75cc-8a9d-30643cef019e"
DBT_STRUCTURED_FAILING = "01a22a8e-4bdc-7315-8d49-65c06bbf82da"
AIRFLOW_DAG_RUN = "0199a9f0-4d2c-7b1e-8f30-1a2b3c4d5e6f"  # root of build_under_parent
AIRFLOW_TASK_RUN = "0199a9f0-5e0b-7c3a-9a51-3c4d2f6b7a10"  # parent of both under_parent files
DBT_WRAPPER = "dbt-run-pipeline_ledger"

RUNS_SQL = """
select run_key, pipeline_name, status, is_aborted, attempts, error_message, created_at,
    completed_at, last_event_at
from public.pipelines
"""
STAGES_SQL = """
select pipelines.run_key, stages.stage_name, stages.status, stages.is_aborted,
    stages.attempts, stages.run_attempt, stages.error_message, stages.records_processed,
    stages.started_at, stages.completed_at, stages.last_event_at
from public.pipeline_stages as stages
inner join public.pipelines on stages.pipeline_id = pipelines.id
"""
MART_RUNS_SQL = """
select run_key, status, is_aborted, failed_stage_count, failed_stage_name,
    first_failed_stage_error, error_message
from marts.fct_pipeline_runs
"""


def lines(relative: str) -> list[bytes]:
    """The JSON lines of one fixture file, as the producer wrote them."""
    path = FIXTURES / relative
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    return data.splitlines()


def load(conn: Connection, event_lines: Iterable[bytes], source: str = "producer") -> None:
    result = ingest_stream(conn, io.BytesIO(b"\n".join(event_lines) + b"\n"), source=source)
    assert result.rejected == 0, result


def runs(conn: Connection) -> dict[str, dict[str, Any]]:
    return {row.pop("run_key"): row for row in query(conn, RUNS_SQL)}


def stages(conn: Connection, run_key: str | None = None) -> dict[Any, dict[str, Any]]:
    rows = {(row.pop("run_key"), row.pop("stage_name")): row for row in query(conn, STAGES_SQL)}
    if run_key is None:
        return rows
    return {name: row for (key, name), row in rows.items() if key == run_key}


def airflow_key(dag_id: str, airflow_run_id: str) -> str:
    return f"airflow-prod/{dag_id}/{airflow_run_id}"


def fresh_database(server: Settings, name: str) -> Settings:
    settings = recreate_database(server, name)
    with connect(settings, autocommit=True) as conn:
        create_raw_schema(conn)
        create_roles(conn)
    return settings


@pytest.fixture(scope="module")
def every_file(server: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A database holding every fixture file, built once with the marts."""
    settings = fresh_database(server, "test_openlineage_producers_every_file")
    with connect(settings, autocommit=True) as conn:
        for relative in EVERY_FILE:
            load(conn, lines(relative), relative)
    target = tmp_path_factory.mktemp("dbt-every-file")
    dbt(settings, target, "seed")
    dbt(settings, target, "run")
    yield settings
    drop_database(server, settings.dbname)


@pytest.fixture
def built(every_file: Settings) -> Iterator[Connection]:
    with connect(every_file, autocommit=True) as conn:
        yield conn


def test_every_file_gives_one_run_per_orchestrated_unit(built: Connection) -> None:
    """Decision 1: 13 runs, not one per dbt node or SQL statement (209 extra before)."""
    names = Counter(row["pipeline_name"] for row in runs(built).values())

    assert names == {
        DBT_WRAPPER: 4,  # build, failing build, structured logs with and without failure
        "ledger_dag": 1,  # build_under_parent: the root the dbt command ran under
        "ledger_dag.run_dbt": 1,  # build_under_parent_no_root: the parent is all it knows
        "ledger_retry": 2,  # scheduler and `dags test`
        "ledger_failing": 2,
        "ledger_failing_then_fixed": 1,  # failed, cleared, re-run: one run
        "ledger_parent_trigger": 1,
        "ledger_child": 1,  # a triggered DAG stays its own pipeline
    }


def test_a_retried_airflow_task_is_one_stage_decided_by_its_last_try(built: Connection) -> None:
    run_key = airflow_key("ledger_retry", "ledger_retry_run")
    run = runs(built)[run_key]
    rows = stages(built, run_key)

    assert (run["status"], run["attempts"], run["error_message"]) == ("completed", 1, None)
    assert {name: (row["status"], row["attempts"]) for name, row in rows.items()} == {
        "ledger_retry.extract": ("completed", 1),
        "ledger_retry.transform": ("completed", 2),  # try 1 failed, try 2 completed
        "ledger_retry.partition[0]": ("completed", 1),  # mapped instances: stages, not tries
        "ledger_retry.partition[1]": ("completed", 1),
        "ledger_retry.partition[2]": ("completed", 1),
        "ledger_retry.load": ("completed", 1),
    }
    assert rows["ledger_retry.transform"]["error_message"] is None
    [mart] = [row for row in query(built, MART_RUNS_SQL) if row["run_key"] == run_key]
    assert (mart["failed_stage_count"], mart["failed_stage_name"]) == (0, None)


def test_a_failed_dag_run_shows_its_failed_tasks_error_beside_task_failure(
    built: Connection,
) -> None:
    """Decision 7: Airflow's DAG-level FAIL says only `task_failure`."""
    run_key = airflow_key("ledger_failing", "ledger_failing_run")
    [mart] = [row for row in query(built, MART_RUNS_SQL) if row["run_key"] == run_key]

    assert mart == {
        "run_key": run_key,
        "status": "failed",
        "is_aborted": False,
        "failed_stage_count": 1,
        "failed_stage_name": "ledger_failing.transform",
        "first_failed_stage_error": "column 'amount' missing",
        "error_message": "task_failure",
    }
    assert {name: row["status"] for name, row in stages(built, run_key).items()} == {
        "ledger_failing.extract": "completed",
        "ledger_failing.transform": "failed",
    }


def test_a_cleared_and_rerun_dag_run_is_one_run_decided_by_the_rerun(built: Connection) -> None:
    """Decision 3: both DAG runIds (clear numbers 0 and 1) are one run, attempt 2."""
    run_key = airflow_key("ledger_failing_then_fixed", "ledger_fixed_run")
    run = runs(built)[run_key]
    rows = stages(built, run_key)

    assert (run["status"], run["attempts"], run["error_message"]) == ("completed", 2, None)
    assert {
        name: (row["status"], row["run_attempt"], row["attempts"]) for name, row in rows.items()
    } == {
        "ledger_failing_then_fixed.extract": ("completed", 1, 1),  # not re-run after the clear
        "ledger_failing_then_fixed.transform": ("completed", 2, 2),
        "ledger_failing_then_fixed.load": ("completed", 2, 1),
    }


def test_a_triggered_dag_is_its_own_run(built: Connection) -> None:
    by_name = {row["pipeline_name"]: (key, row) for key, row in runs(built).items()}
    parent_key, parent = by_name["ledger_parent_trigger"]
    child_key, child = by_name["ledger_child"]

    assert (parent["status"], child["status"]) == ("completed", "completed")
    assert set(stages(built, parent_key)) == {
        "ledger_parent_trigger.prepare",
        "ledger_parent_trigger.trigger_child",
    }
    assert set(stages(built, child_key)) == {"ledger_child.child_work"}


def test_dags_test_runs_without_a_dag_start_are_decided_by_their_end(built: Connection) -> None:
    statuses = {
        row["pipeline_name"]: row["status"]
        for key, row in runs(built).items()
        if key.startswith(("airflow-prod/ledger_retry/manual__", "airflow-prod/ledger_failing/"))
    }
    assert statuses == {"ledger_retry": "completed", "ledger_failing": "failed"}
    assert Counter(row["pipeline_name"] for row in runs(built).values())["ledger_failing"] == 2


def test_a_dbt_build_is_one_run_with_a_stage_per_node(built: Connection) -> None:
    run = runs(built)[DBT_BUILD]
    rows = stages(built, DBT_BUILD)

    assert (run["pipeline_name"], run["status"]) == (DBT_WRAPPER, "completed")
    assert len(rows) == 31  # 13 models, 15 test groups, 3 singular tests
    assert {row["status"] for row in rows.values()} == {"completed"}
    model = rows["ledger.public.pipeline_ledger.pipelines.build.run"]
    assert (model["attempts"], model["is_aborted"]) == (1, False)


def test_structured_logs_sql_statements_are_activity_of_their_node(built: Connection) -> None:
    """Decision 1: 394 SQL statements under nodes are neither runs nor stages."""
    rows = stages(built, DBT_STRUCTURED)

    assert runs(built)[DBT_STRUCTURED]["status"] == "completed"
    assert len(rows) == 204  # 1 seed, 13 models, 170 data tests, 20 unit tests
    assert not [name for name in rows if ".sql." in name]
    node = rows["model.pipeline_ledger.pipeline_stages"]
    [last_statement] = query(
        built,
        "select max(event_time) as at from raw.run_events"
        " where attributes #>> '{openlineage,job,name}' like %s",
        ["model.pipeline_ledger.pipeline_stages.sql.%"],
    )
    assert node["last_event_at"] == max(node["completed_at"], last_statement["at"])
    assert len(lines("dbt/build_structured_logs.jsonl.gz")) == 1198
    [stored] = query(built, "select count(*) as events from raw.run_events")
    assert stored["events"] == sum(len(lines(relative)) for relative in EVERY_FILE)


def test_skipped_dbt_nodes_are_aborted_and_no_failure_of_their_own(built: Connection) -> None:
    """Decision 4: START then ABORT for 160 skipped nodes; one node really failed."""
    rows = stages(built, DBT_STRUCTURED_FAILING)
    outcome = Counter((row["status"], row["is_aborted"]) for row in rows.values())
    [mart] = [
        row for row in query(built, MART_RUNS_SQL) if row["run_key"] == DBT_STRUCTURED_FAILING
    ]
    reasons = query(
        built,
        "select stage_name, failures from marts.failure_reasons"
        " where pipeline_name = %s and failures is not null",
        [DBT_WRAPPER],
    )

    assert outcome == {("completed", False): 43, ("failed", True): 160, ("failed", False): 1}
    aborted = rows["model.pipeline_ledger.pipelines"]
    assert (aborted["error_message"], aborted["attempts"]) == ("aborted", 1)
    assert mart["failed_stage_count"] == 1
    assert mart["failed_stage_name"] == "model.pipeline_ledger.pipeline_stages"
    assert mart["first_failed_stage_error"].startswith("Database Error in model pipeline_stages")
    assert mart["error_message"].startswith("Command `dbt build` failed")
    # The default-mode failing build sends no ABORT: its 14 failed groups are failures.
    assert sorted((row["stage_name"] or "", row["failures"]) for row in reasons) == sorted(
        [("model.pipeline_ledger.pipeline_stages", 1)]
        + [(name, 1) for name, row in stages(built, DBT_BUILD_FAILING).items()
           if row["status"] == "failed"]
    )  # fmt: skip


def test_dbt_under_an_airflow_task_is_activity_of_that_task_under_the_dag_run(
    built: Connection,
) -> None:
    """Decision 1: the root is the DAG run; the task the dbt command ran in is its stage."""
    with_root = runs(built)[AIRFLOW_DAG_RUN]
    no_root = runs(built)[AIRFLOW_TASK_RUN]

    assert with_root["pipeline_name"] == "ledger_dag"
    assert {
        name: (row["status"], row["attempts"])
        for name, row in stages(built, AIRFLOW_DAG_RUN).items()
    } == {"ledger_dag.run_dbt": ("running", 1)}
    # Without OPENLINEAGE_ROOT_PARENT_ID the parent is the top dbt-ol knows of.
    assert no_root["pipeline_name"] == "ledger_dag.run_dbt"
    assert {name: row["status"] for name, row in stages(built, AIRFLOW_TASK_RUN).items()} == {
        DBT_WRAPPER: "completed"
    }


def test_the_raw_log_keeps_every_runevent_whole(built: Connection) -> None:
    """Decision 6: every facet, input and output, as the producer sent it."""
    stored = {
        json.dumps(row["run_event"], sort_keys=True)
        for row in query(built, "select run_event from staging.stg_raw__openlineage_run_events")
    }
    sent = {
        json.dumps(json.loads(line), sort_keys=True)
        for relative in EVERY_FILE
        for line in lines(relative)
    }
    assert stored == sent


# ---- arrival order: the tree is resolved whatever came first -------------------------------

DAG_ID = "ledger_dag"
AIRFLOW_RUN_ID = "ledger_dag_run"
RunDbt = Any  # the run_dbt fixture
BUILD_RUNS_AND_STAGES = ("run", "--select", "+fct_stage_runs")


def airflow_events_around(dbt_lines: list[bytes]) -> list[bytes]:
    """The Airflow DAG run and task that dbt-ol's OPENLINEAGE_PARENT_ID / ROOT named.

    Real Airflow 3.3.2 events (airflow/retry_and_mapped.jsonl: the DAG run's START and
    COMPLETE, the extract task's) given the ids the dbt files name, and times around them.
    """
    times = sorted(json.loads(line)["eventTime"].replace("Z", "+00:00") for line in dbt_lines)
    template = [json.loads(line) for line in lines("airflow/retry_and_mapped.jsonl")]
    dag_start, dag_end = (e for e in template if e["job"]["name"] == "ledger_retry")
    task_start, task_end = (e for e in template if e["job"]["name"] == "ledger_retry.extract")
    shaped = [
        (dag_start, AIRFLOW_DAG_RUN, DAG_ID, f"{times[0][:17]}00+00:00"),
        (task_start, AIRFLOW_TASK_RUN, f"{DAG_ID}.run_dbt", f"{times[0][:17]}01+00:00"),
        (task_end, AIRFLOW_TASK_RUN, f"{DAG_ID}.run_dbt", f"{times[-1][:16]}:58+00:00"),
        (dag_end, AIRFLOW_DAG_RUN, DAG_ID, f"{times[-1][:16]}:59+00:00"),
    ]
    return [json.dumps(retarget(*args)).encode() for args in shaped]


def retarget(event: dict[str, Any], run_id: str, job_name: str, at: str) -> dict[str, Any]:
    """A copy of a real Airflow event for another run, job and time, in DAG ledger_dag."""
    copy = json.loads(json.dumps(event))
    copy["run"]["runId"], copy["job"]["name"], copy["eventTime"] = run_id, job_name, at
    facets = copy["run"]["facets"]
    if "airflowDagRun" in facets:
        facets["airflowDagRun"]["dagRun"].update(dag_id=DAG_ID, run_id=AIRFLOW_RUN_ID)
    if "airflow" in facets:
        facets["airflow"]["dagRun"].update(dag_id=DAG_ID, run_id=AIRFLOW_RUN_ID)
        facets["airflow"]["dag"]["dag_id"] = DAG_ID
        for reference in (facets["parent"], facets["parent"]["root"]):
            reference["run"]["runId"], reference["job"]["name"] = AIRFLOW_DAG_RUN, DAG_ID
    return copy


def without_build_columns(rows: dict[Any, dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    return {
        key: {k: v for k, v in row.items() if k != "last_event_at"} for key, row in rows.items()
    }


@pytest.mark.parametrize(
    ("dbt_file", "dbt_first"),
    [("dbt/build_under_parent.jsonl.gz", True), ("dbt/build_under_parent_no_root.jsonl.gz", False)],
)
def test_dbt_inside_an_airflow_task_joins_the_dag_run_whichever_arrives_first(
    db: Connection, run_dbt: RunDbt, dbt_file: str, dbt_first: bool
) -> None:
    """Decision 1: one run (the DAG run, by its Airflow key), the task its only stage.

    Before, dbt under a task gave runs of their own beside the DAG run, forever running.
    """
    dbt_lines = lines(dbt_file)
    airflow_lines = airflow_events_around(dbt_lines)
    first, then = (dbt_lines, airflow_lines) if dbt_first else (airflow_lines, dbt_lines)
    load(db, first)
    run_dbt(*BUILD_RUNS_AND_STAGES)
    load(db, then)
    run_dbt(*BUILD_RUNS_AND_STAGES)
    run_key = airflow_key(DAG_ID, AIRFLOW_RUN_ID)
    incremental = (runs(db), stages(db), query(db, "select * from marts.fct_stage_runs"))

    assert {key: (row["pipeline_name"], row["status"]) for key, row in runs(db).items()} == {
        run_key: (DAG_ID, "completed")
    }
    [task] = stages(db, run_key).values()
    assert (task["status"], task["attempts"]) == ("completed", 1)
    assert [row["pipeline_id"] for row in query(db, "select * from marts.fct_pipeline_runs")] == [
        row["pipeline_id"] for row in incremental[2]
    ]
    run_dbt(*BUILD_RUNS_AND_STAGES, "--full-refresh")
    assert (runs(db), stages(db)) == incremental[:2]


def test_client_child_runs_retried_under_new_run_ids_are_attempts_in_any_order(
    db: Connection, run_dbt: RunDbt
) -> None:
    """Decision 2: the OpenLineage client reports each try as a new child runId.

    Built with openlineage-python's own classes; without a try number the attempts are
    numbered by when each runId began (ties by runId), whatever the arrival order.
    """
    from openlineage.client.event_v2 import Job, Run, RunEvent, RunState  # noqa: PLC0415
    from openlineage.client.facet_v2 import error_message_run, parent_run  # noqa: PLC0415
    from openlineage.client.serde import Serde  # noqa: PLC0415

    namespace, parent_job = "jobs", "nightly"
    parent_run_id = "01a22a8e-0000-7000-8000-000000000001"
    parent_facet = parent_run.ParentRunFacet(
        run=parent_run.Run(runId=parent_run_id), job=parent_run.Job(namespace, parent_job)
    )

    def event(state: RunState, job: str, run_id: str, second: int, error: str | None = None):
        facets: dict[str, Any] = {}
        if job != parent_job:
            facets["parent"] = parent_facet
        if error is not None:
            facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(error, "python")
        return Serde.to_json(
            RunEvent(
                eventType=state,
                eventTime=f"2026-03-01T10:00:{second:02d}+00:00",
                run=Run(runId=run_id, facets=facets),
                job=Job(namespace=namespace, name=job),
                producer="https://example.com/nightly",
            )
        ).encode()

    try_ids = [f"01a22a8e-0000-7000-8000-00000000010{n}" for n in (3, 2, 1)]  # ids run backwards
    events = [
        event(RunState.START, parent_job, parent_run_id, 0),
        event(RunState.START, "extract", "01a22a8e-0000-7000-8000-000000000099", 1),
        event(RunState.COMPLETE, "extract", "01a22a8e-0000-7000-8000-000000000099", 2),
        event(RunState.START, "load", try_ids[0], 3),
        event(RunState.FAIL, "load", try_ids[0], 4, "ConnectionError: reset"),
        event(RunState.START, "load", try_ids[1], 5),
        event(RunState.FAIL, "load", try_ids[1], 6, "ConnectionError: reset again"),
        event(RunState.START, "load", try_ids[2], 7),
        event(RunState.COMPLETE, "load", try_ids[2], 8),
        event(RunState.COMPLETE, parent_job, parent_run_id, 9),
    ]
    shuffled = events[:]
    random.Random(11).shuffle(shuffled)
    load(db, shuffled[:5])
    run_dbt(*BUILD_RUNS_AND_STAGES)
    load(db, shuffled[5:])
    run_dbt(*BUILD_RUNS_AND_STAGES)

    assert {name: (row["status"], row["attempts"], row["error_message"])
            for name, row in stages(db, parent_run_id).items()} == {
        "extract": ("completed", 1, None),
        "load": ("completed", 3, None),  # 1 and 2 failed; 3 decides
    }  # fmt: skip
    [mart] = query(db, "select retry_count, failed_stage_count from marts.fct_pipeline_runs")
    assert mart == {"retry_count": 2, "failed_stage_count": 0}


def test_every_file_in_shuffled_batches_gives_the_tables_of_one_load(
    db: Connection, run_dbt: RunDbt, built: Connection
) -> None:
    """Any arrival order and batching, a build after each batch: the same tables."""
    every_line = [line for relative in EVERY_FILE for line in lines(relative)]
    random.Random(2026).shuffle(every_line)
    for batch in (every_line[:900], every_line[900:1500], every_line[1500:]):
        load(db, batch)
        run_dbt(*BUILD_RUNS_AND_STAGES)

    assert without_build_columns(runs(db)) == without_build_columns(runs(built))
    assert stages(db) == stages(built)
