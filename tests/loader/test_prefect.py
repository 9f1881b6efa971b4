"""loader.prefect against a real Prefect 3: what the ledger derives equals Prefect's own record.

Prefect runs with its ephemeral API in this process (PREFECT_HOME in a temporary folder,
no PREFECT_API_URL); the flows below are what a user writes, with the two lines. After
each flow, `dbt run` builds pipelines and pipeline_stages, and these are compared with the
flow and task runs read back through Prefect's client.
"""

from __future__ import annotations

import asyncio
import dataclasses
import multiprocessing
import os
import pickle
import signal
import tempfile
import threading
import time
import types
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

# Prefect reads its settings at import: a private home, the ephemeral API, quiet logs.
# A process this module spawns inherits the home, and so shares the API's database.
os.environ["PREFECT_HOME"] = os.environ.setdefault(
    "LEDGER_TEST_PREFECT_HOME", tempfile.mkdtemp(prefix="prefect-home-")
)
os.environ.pop("PREFECT_API_URL", None)
os.environ["PREFECT_SERVER_ALLOW_EPHEMERAL_MODE"] = "true"
os.environ["PREFECT_LOGGING_LEVEL"] = "CRITICAL"
os.environ["PREFECT_LOGGING_SERVER_LEVEL"] = "CRITICAL"
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_LOGGING_TO_API_ENABLED"] = "false"

import pytest
from prefect import flow, task
from prefect._internal import control_listener
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter
from prefect.client.schemas.objects import StateType, TaskRun
from prefect.exceptions import TerminationSignal
from prefect.states import Cancelled
from prefect.task_runners import ProcessPoolTaskRunner

from loader import Ledger, Settings, embedded
from loader import prefect as prefect_hooks
from loader.connection import Connection, connect
from loader.delivery import FIRST_RETRY_DELAY, backoff_for
from loader.prefect import ledger_flow, ledger_task, records
from tests.conftest import RunDbt
from tests.support import BUILD_LEDGER_TABLES, dbt, query
from tests.support.gate import Gate
from tests.support.own_server import fresh_database

# Prefect's own client leaves a socket of its ephemeral API to the garbage collector.
pytestmark = pytest.mark.filterwarnings(
    "ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning"
)
STAGES = ["Data Ingestion", "Spark Processing", "Data Export"]
TOLERANCE = timedelta(milliseconds=5)


@pytest.fixture(scope="module")
def ledger(database: Settings) -> Iterator[Ledger]:
    with Ledger(database) as handle:
        yield handle


def derived(conn: Connection, run_dbt: RunDbt, run_key: str) -> dict[str, Any]:
    run_dbt(*BUILD_LEDGER_TABLES)
    (run,) = query(conn, "select * from public.pipelines where run_key = %s", [run_key])
    stages = query(
        conn,
        "select * from public.pipeline_stages where pipeline_id = %s order by stage_name",
        [run["id"]],
    )
    return {"run": run, "stages": {stage["stage_name"]: stage for stage in stages}}


def prefect_record(flow_run_id: UUID) -> dict[str, Any]:
    """The root flow run, its subflows and every task run, as Prefect's API has them."""
    with get_client(sync_client=True) as client:
        root = client.read_flow_run(flow_run_id)
        own = client.read_task_runs(flow_run_filter=FlowRunFilter(id={"any_": [flow_run_id]}))
        own_ids = {run.id for run in own}
        subflows = [run for run in client.read_flow_runs() if run.parent_task_run_id in own_ids]
        inner = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id={"any_": [run.id for run in subflows] or [root.id]})
        )
        # A subflow shows in its parent as a task run of its own name: not a task.
        tracking = {run.parent_task_run_id for run in subflows}
        task_runs = [
            run for run in {r.id: r for r in [*own, *inner]}.values() if run.id not in tracking
        ]
        states = {run.id: client.read_task_run_states(run.id) for run in task_runs}
    return {"root": root, "subflows": subflows, "tasks": task_runs, "states": states}


def close(a: datetime | None, b: datetime | None) -> bool:
    assert a is not None
    assert b is not None
    return abs(a - b) <= TOLERANCE


def wait_for_task_runs(flow_run_id: UUID, count: int) -> dict[str, Any]:
    """Prefect records task runs from events, a moment after the flow returns."""
    for _ in range(100):
        record = prefect_record(flow_run_id)
        finished = [run for run in record["tasks"] if run.state and run.state.is_final()]
        if len(finished) >= count:
            return record
        asyncio.run(asyncio.sleep(0.1))
    raise AssertionError(f"Prefect recorded {len(finished)} of {count} task runs")


ATTEMPTS: dict[str, int] = {}


@task(**ledger_task("Data Ingestion"))
def ingest(partition: int) -> int:
    return 1000 + partition


@task(retries=2, **ledger_task("Spark Processing"))
def spark(rows: int, fail_first: bool) -> int:
    ATTEMPTS["spark"] = ATTEMPTS.get("spark", 0) + 1
    if fail_first and ATTEMPTS["spark"] == 1:
        raise MemoryError("executor lost")
    return rows


@task(**ledger_task("Data Export"))
def export(rows: int) -> str:
    records(rows)
    return "s3://bucket/daily.parquet"


@flow(**ledger_flow("daily_sales_publish"))
def publish(rows: int) -> int:
    export(rows)
    return rows


def test_the_five_stage_flow_equals_prefects_record(
    ledger: Ledger, db: Connection, run_dbt: RunDbt
) -> None:
    ATTEMPTS.clear()
    tries = {"flow": 0}

    @flow(retries=1, **ledger_flow("daily_sales", stages=STAGES, ledger=ledger))
    def daily_sales() -> int:
        tries["flow"] += 1
        if tries["flow"] == 1:
            raise RuntimeError("upstream not ready")
        parts = [ingest.submit(partition) for partition in range(3)]
        rows = sum(part.result() for part in parts)
        rows = spark(rows, fail_first=True)
        return publish(rows)

    state = daily_sales(return_state=True)
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    prefect = wait_for_task_runs(flow_run_id, 5)
    tables = derived(db, run_dbt, str(flow_run_id))
    run, stages = tables["run"], tables["stages"]

    root = prefect["root"]
    assert (run["status"], run["attempts"]) == ("completed", root.run_count) == ("completed", 2)
    assert close(run["completed_at"], root.end_time)
    assert run["records_processed"] == 3003
    assert set(stages) == {
        "Data Ingestion",  # planned, never run under that name: the fan-out is [0], [1], [2]
        "Data Ingestion[0]",
        "Data Ingestion[1]",
        "Data Ingestion[2]",
        "Spark Processing",
        "Data Export",  # planned, ran inside the subflow
        "publish",  # the subflow: one stage, named by the flow
        "publish/Data Export",
    }
    assert stages["Data Ingestion"]["status"] == "pending"
    names = {
        "ingest": "Data Ingestion",
        "spark": "Spark Processing",
        "export": "publish/Data Export",
    }

    def base_of(task_run: Any) -> str:
        return names[task_run.task_key.rsplit("-", 1)[0].rsplit(".", 1)[-1]]

    # The fan-out's three runs start within milliseconds of each other: pair Prefect's
    # runs and the [n] stages in start order (the ledger records Prefect's own times).
    fan_out = sorted(
        (task_run for task_run in prefect["tasks"] if base_of(task_run) == "Data Ingestion"),
        key=lambda task_run: task_run.start_time,
    )
    partitions = sorted(
        (s for name, s in stages.items() if name.startswith("Data Ingestion[")),
        key=lambda s: s["started_at"],
    )
    seen = []
    for task_run in prefect["tasks"]:
        base = base_of(task_run)
        if base == "Data Ingestion":
            stage = partitions[fan_out.index(task_run)]
            # [n] holds partition n's rows: 1000 + n.
            assert stage["stage_name"] == f"Data Ingestion[{stage['records_processed'] - 1000}]"
            seen.append(stage["stage_name"])
        else:
            stage = stages[base]
    assert sorted(seen) == ["Data Ingestion[0]", "Data Ingestion[1]", "Data Ingestion[2]"]
    assert stages["Spark Processing"]["attempts"] == 2
    assert stages["Spark Processing"]["records_processed"] == 3003
    assert stages["publish/Data Export"]["records_processed"] == 3003
    (subflow,) = prefect["subflows"]
    assert stages["publish"]["status"] == "completed"
    assert close(stages["publish"]["completed_at"], subflow.end_time)

    # Each try's failure is in raw, with Prefect's error text, before the retry.
    failures = query(
        db,
        "select stages.stage_name, events.attempt, events.run_attempt, events.error_message"
        " from raw.run_events as events left join raw.stages using (stage_id)"
        " where events.status = 'failed' order by events.event_time",
    )
    assert failures == [
        {
            "stage_name": None,
            "attempt": 1,
            "run_attempt": 1,
            "error_message": "RuntimeError: upstream not ready",
        },
        {
            "stage_name": "Spark Processing",
            "attempt": 1,
            "run_attempt": 2,
            "error_message": "MemoryError: executor lost",
        },
    ]


def test_a_flow_failing_in_spark_processing(
    ledger: Ledger, db: Connection, run_dbt: RunDbt
) -> None:
    @task(**ledger_task("Spark Processing"))
    def spark_fails() -> None:
        raise ValueError("bad partition 7")

    @flow(**ledger_flow("daily_sales", stages=STAGES, ledger=ledger))
    def daily_sales() -> None:
        ingest(0)
        spark_fails()

    state = daily_sales(return_state=True)
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    prefect = wait_for_task_runs(flow_run_id, 2)
    tables = derived(db, run_dbt, str(flow_run_id))
    run, stages = tables["run"], tables["stages"]
    assert run["status"] == "failed"
    assert run["error_message"] == "ValueError: bad partition 7"
    assert close(run["completed_at"], prefect["root"].end_time)
    spark_stage = stages["Spark Processing"]
    assert (spark_stage["status"], spark_stage["error_message"]) == (
        "failed",
        "ValueError: bad partition 7",
    )
    (spark_run,) = [t for t in prefect["tasks"] if t.state and t.state.is_failed()]
    assert close(spark_stage["completed_at"], spark_run.end_time)
    assert stages["Data Ingestion"]["records_processed"] == 1000
    assert stages["Data Export"]["status"] == "pending"


class Crash(BaseException):
    """Something that is not an Exception: Prefect marks the flow run Crashed."""


def test_a_crash_closes_the_stage_that_was_running(
    ledger: Ledger, db: Connection, run_dbt: RunDbt
) -> None:
    @task(**ledger_task("Spark Processing"))
    def spark_crashes() -> None:
        raise Crash("killed")

    @flow(**ledger_flow("daily_sales", stages=STAGES, ledger=ledger))
    def daily_sales() -> None:
        ingest(0)
        spark_crashes()

    with pytest.raises(Crash):
        daily_sales()
    with get_client(sync_client=True) as client:
        (root,) = [r for r in client.read_flow_runs() if r.state and r.state.is_crashed()]
    tables = derived(db, run_dbt, str(root.id))
    run, stages = tables["run"], tables["stages"]
    assert run["status"] == "failed"
    assert stages["Spark Processing"]["status"] == "failed"  # tasks have no on_crashed
    assert close(stages["Spark Processing"]["completed_at"], root.state.timestamp)


def test_an_async_flow_with_async_tasks(ledger: Ledger, db: Connection, run_dbt: RunDbt) -> None:
    @task(retries=1, **ledger_task("Data Ingestion"))
    async def ingest_async() -> int:
        ATTEMPTS["async"] = ATTEMPTS.get("async", 0) + 1
        if ATTEMPTS["async"] == 1:
            raise TimeoutError("source slow")
        await asyncio.sleep(0)
        return 42

    @flow(**ledger_flow("daily_sales", stages=STAGES, ledger=ledger))
    async def daily_sales() -> int:
        return await ingest_async()

    state = asyncio.run(daily_sales(return_state=True))  # type: ignore[call-overload]
    flow_run_id = state.state_details.flow_run_id
    prefect = wait_for_task_runs(flow_run_id, 1)
    tables = derived(db, run_dbt, str(flow_run_id))
    stage = tables["stages"]["Data Ingestion"]
    (task_run,) = prefect["tasks"]
    assert (stage["status"], stage["attempts"], stage["records_processed"]) == (
        "completed",
        task_run.run_count,
        42,
    )
    assert close(stage["started_at"], task_run.start_time)
    assert tables["run"]["status"] == "completed"


def test_hooks_compose_with_the_users_own(ledger: Ledger) -> None:
    seen: list[str] = []

    def mine(task_: Any, task_run: Any, state: Any) -> None:
        seen.append(state.name)

    @ledger_task("Data Export")
    @task(on_completion=[mine])
    def exported() -> int:
        return 1

    @flow(**ledger_flow("compose", ledger=ledger, on_completion=[lambda *_: seen.append("flow")]))
    def composed() -> None:
        exported()

    composed()
    assert seen == ["Completed", "flow"]
    assert Path(__file__).exists()


def test_a_process_pool_flow_records_its_workers_tasks(
    ledger: Ledger, db: Connection, run_dbt: RunDbt, tmp_path: Path
) -> None:
    marker = tmp_path / "failed-once"

    @task(retries=1, **ledger_task("Data Ingestion"))
    def ingest_in_worker(partition: int) -> int:
        if partition == 1 and not marker.exists():
            marker.touch()
            raise OSError("worker lost its mount")
        return 1000 + partition

    @flow(
        task_runner=ProcessPoolTaskRunner(max_workers=2),
        **ledger_flow("daily_sales", stages=STAGES, ledger=ledger),
    )
    def daily_sales() -> int:
        return sum(f.result() for f in [ingest_in_worker.submit(p) for p in range(3)])

    state = daily_sales(return_state=True)
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    prefect = wait_for_task_runs(flow_run_id, 3)
    tables = derived(db, run_dbt, str(flow_run_id))
    run, stages = tables["run"], tables["stages"]
    assert (run["status"], run["records_processed"]) == ("completed", 3003)
    fan_out = sorted(prefect["tasks"], key=lambda task_run: task_run.start_time)
    numbered = sorted(
        (s for name, s in stages.items() if name.startswith("Data Ingestion[")),
        key=lambda s: s["started_at"],
    )
    assert len(numbered) == len(fan_out) == 3
    for task_run, stage in zip(fan_out, numbered, strict=True):
        assert stage["stage_name"] == f"Data Ingestion[{stage['records_processed'] - 1000}]"
        assert (stage["status"], stage["attempts"]) == ("completed", task_run.run_count)
        assert close(stage["started_at"], task_run.start_time)
        assert close(stage["completed_at"], task_run.end_time)
    assert stages["Data Ingestion[1]"]["attempts"] == 2


def test_a_cancelled_flow_closes_its_open_stage(
    ledger: Ledger, db: Connection, run_dbt: RunDbt
) -> None:
    @task(**ledger_task("Spark Processing"))
    def spark_cancelled() -> None:
        # What a runner's cancel does: the intent, then SIGTERM to the flow's process.
        control_listener._set_intent("cancel")
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)

    @flow(**ledger_flow("daily_sales", stages=STAGES, ledger=ledger))
    def daily_sales() -> None:
        ingest(0)
        spark_cancelled()

    try:
        with pytest.raises(TerminationSignal):
            daily_sales()
    finally:
        control_listener._intent = None
    for thread in threading.enumerate():  # the ledger records once Cancelled is set
        if thread.name == "ledger-cancelled":
            thread.join()
    with get_client(sync_client=True) as client:
        (root,) = [r for r in client.read_flow_runs() if r.state and r.state.is_cancelled()]
        states = client.read_flow_run_states(root.id)
    tables = derived(db, run_dbt, str(root.id))
    run, stages = tables["run"], tables["stages"]
    assert [state.name for state in states][-2:] == ["Cancelling", "Cancelled"]
    assert (run["status"], run["error_message"]) == ("failed", "Flow run was cancelled.")
    assert close(run["completed_at"], root.state.timestamp)  # Cancelled's, not Cancelling's
    spark_stage = stages["Spark Processing"]
    assert (spark_stage["status"], spark_stage["error_message"]) == (
        "failed",
        "Flow run was cancelled.",
    )
    assert close(spark_stage["completed_at"], root.state.timestamp)
    assert stages["Data Ingestion"]["status"] == "completed"
    assert stages["Data Export"]["status"] == "pending"


def test_a_database_stop_in_the_middle_of_a_flow(server_dir: Path, tmp_path: Path) -> None:
    """Stopped during Spark Processing, started after the flow: nothing lost or doubled."""

    def run_flow(name: str, stop: bool) -> tuple[Settings, UUID, float]:
        settings = fresh_database(server_dir, name, tmp_path / "spool")
        stopping = {"seconds": 0.0}

        @task(**ledger_task("Spark Processing"))
        def spark_stops(rows: int) -> int:
            if stop:
                began = time.monotonic()
                embedded.stop(server_dir)
                stopping["seconds"] = time.monotonic() - began
            return rows

        @flow(**ledger_flow("daily_sales", stages=STAGES, ledger=Ledger(settings)))
        def daily_sales() -> int:
            rows = sum(f.result() for f in [ingest.submit(p) for p in range(2)])
            rows = spark_stops(rows)
            return publish.with_options(**ledger_flow("publish", ledger=Ledger(settings)))(rows)

        began = time.monotonic()
        state = daily_sales(return_state=True)
        elapsed = time.monotonic() - began - stopping["seconds"]
        assert state.is_completed()
        assert state.state_details.flow_run_id is not None
        return settings, state.state_details.flow_run_id, elapsed

    calm, calm_id, calm_seconds = run_flow("prefect_calm", stop=False)
    disturbed, disturbed_id, disturbed_seconds = run_flow("prefect_outage", stop=True)
    # The outage costs the flow at most one connect timeout (and a second of noise).
    assert disturbed_seconds <= calm_seconds + disturbed.connect_timeout + 1.0
    embedded.start(server_dir)
    with Ledger(disturbed, source="flush") as flusher:
        flusher.flush()

    def tables(settings: Settings, run_key: UUID) -> dict[str, Any]:
        dbt(settings, tmp_path / "dbt", *BUILD_LEDGER_TABLES)
        with connect(settings) as conn:
            events = query(
                conn, "select count(*) as n, count(distinct event_id) as d from raw.run_events"
            )
            return {"events": events, **derived(conn, lambda *_: None, str(run_key))}

    expected, got = tables(calm, calm_id), tables(disturbed, disturbed_id)
    assert got["events"] == expected["events"]
    assert got["events"][0]["n"] == got["events"][0]["d"]
    same = ("pipeline_name", "status", "attempts", "records_processed", "error_message")
    assert {k: got["run"][k] for k in same} == {k: expected["run"][k] for k in same}
    shape = ("status", "attempts", "records_processed", "error_message")
    assert {n: {k: s[k] for k in shape} for n, s in got["stages"].items()} == {
        n: {k: s[k] for k in shape} for n, s in expected["stages"].items()
    }
    # The disturbed run's times are Prefect's, spooled or not.
    prefect = wait_for_task_runs(disturbed_id, 4)
    assert close(got["run"]["completed_at"], prefect["root"].end_time)
    spark_run = next(t for t in prefect["tasks"] if t.task_key.startswith("spark_stops"))
    assert close(got["stages"]["Spark Processing"]["completed_at"], spark_run.end_time)
    (subflow,) = prefect["subflows"]
    assert close(got["stages"]["publish"]["completed_at"], subflow.end_time)


@task(**ledger_task("Spark Processing"))
def spark_outlasting_the_first_backoff(rows: int) -> int:
    time.sleep(FIRST_RETRY_DELAY + 0.2)  # the next event comes after any first backoff
    return rows


def test_a_database_that_never_answers_costs_the_flow_one_timeout(
    database: Settings, db: Connection, run_dbt: RunDbt, tmp_path: Path
) -> None:
    """Every connect waits its whole timeout (a server that accepts and never answers).

    The flow pays one: its events spool, and later connects are the background probe's,
    however long the outage. Flushed afterwards, the spooled events give the tables of
    an undisturbed run.
    """
    timeout = 3.0

    def run_flow(settings: Settings) -> tuple[UUID, float]:
        settings = dataclasses.replace(settings, connect_timeout=timeout, spool_dir=tmp_path)
        with Ledger(settings) as gated_ledger:

            @flow(**ledger_flow("daily_sales", stages=STAGES, ledger=gated_ledger))
            def daily_sales() -> int:
                rows = sum(f.result() for f in [ingest.submit(p) for p in range(3)])
                return publish(spark_outlasting_the_first_backoff(rows))

            began = time.monotonic()
            state = daily_sales(return_state=True)
            elapsed = time.monotonic() - began
        assert state.is_completed()
        assert state.state_details.flow_run_id is not None
        return state.state_details.flow_run_id, elapsed

    run_flow(database)  # Prefect's ephemeral API starts with a module's first flow
    calm_id, calm_seconds = run_flow(database)
    with Gate(database, mode="silent") as silent_gate:
        silent_id, silent_seconds = run_flow(silent_gate.settings())
        assert silent_seconds <= calm_seconds + timeout + 1.5, (silent_seconds, calm_seconds)
        assert count_rows(db, str(silent_id)) == 0
        silent_gate.mode = "open"
        spooled = silent_gate.settings(spool_dir=tmp_path)
        with Ledger(spooled, source="flush") as flusher:
            flusher.flush()

    calm, silent = derived(db, run_dbt, str(calm_id)), derived(db, run_dbt, str(silent_id))
    same = ("status", "attempts", "records_processed", "error_message")
    assert {k: silent["run"][k] for k in same} == {k: calm["run"][k] for k in same}
    assert {name: {k: s[k] for k in same} for name, s in silent["stages"].items()} == {
        name: {k: s[k] for k in same} for name, s in calm["stages"].items()
    }


def count_rows(conn: Connection, run_key: str) -> int:
    [row] = query(
        conn,
        "select count(*) as n from raw.run_events as events"
        " inner join raw.runs on runs.pipeline_id = events.pipeline_id where runs.run_key = %s",
        [run_key],
    )
    return int(row["n"])


def failures_seen_by_a_spawned_worker(pickled_hooks: bytes) -> int:
    """In a fresh interpreter: unpickle a task's hooks as a process pool's worker does."""
    hooks = pickle.loads(pickled_hooks)  # our own bytes, from the test
    return backoff_for(hooks.scope[1].run.ledger.settings).failures


def test_a_spawned_worker_adopts_the_flows_outage(database: Settings, tmp_path: Path) -> None:
    """A worker started by spawn (not fork) inherits nothing: the hooks carry the outage."""
    with Gate(database, mode="refuse") as gate:
        settings = gate.settings(spool_dir=tmp_path / "spool")
        with Ledger(settings) as failing:
            failing.emit({"run_key": "pooled", "pipeline_name": "p", "status": "running"})
            assert backoff_for(settings).failures == 1
            scope = prefect_hooks._Scope(failing.attach("pooled"), "", None, 1)
            hooks = prefect_hooks._TaskHooks("Data Ingestion", None, 0, (uuid4(), scope))
            pickled = pickle.dumps(hooks)
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            assert pool.apply(failures_seen_by_a_spawned_worker, (pickled,)) == 1


def wait_until_prefect_has_running(count: int) -> None:
    """Prefect learns a task run's states from events a moment later: a process killed
    at once could leave it none, and this is about the ones it has."""
    running_flows = FlowRunFilter(state={"type": {"any_": [StateType.RUNNING]}})
    for _ in range(200):
        with get_client(sync_client=True) as client:
            task_runs = client.read_task_runs(flow_run_filter=running_flows)
        running = [r for r in task_runs if r.state and r.state.is_running()]
        if len(running) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"Prefect has {len(running)} of {count} task runs running")


@task(**ledger_task("Spark Processing"))
def spark_killed(rows: int, running: int = 1) -> int:
    wait_until_prefect_has_running(running)
    os.kill(os.getpid(), signal.SIGKILL)  # the process dies (OOM killer): no state, no hook
    return rows


@task(**ledger_task("Data Export"))
def export_stalled() -> None:
    time.sleep(60)


@flow(**ledger_flow("daily_sales_publish"))
def publish_killed(rows: int) -> int:
    return spark_killed(rows, running=3)


def test_a_killed_process_pool_worker_leaves_no_stage_running(
    ledger: Ledger, db: Connection, run_dbt: RunDbt
) -> None:
    """The worker records nothing more; the flow's end closes the stage it left open."""

    @flow(
        task_runner=ProcessPoolTaskRunner(max_workers=1),
        **ledger_flow("daily_sales", stages=STAGES, ledger=ledger),
    )
    def daily_sales() -> int:
        return spark_killed.submit(ingest.submit(0).result()).result()

    state = daily_sales(return_state=True)
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    tables = derived(db, run_dbt, str(flow_run_id))
    run, stages = tables["run"], tables["stages"]

    assert not state.is_completed()
    assert run["status"] == "failed"
    assert stages["Data Ingestion[0]"]["status"] == "completed"
    killed = stages["Spark Processing[0]"]
    assert (killed["status"], killed["attempts"]) == ("failed", 1)
    assert killed["error_message"] == run["error_message"]
    assert close(killed["completed_at"], state.timestamp)


def daily_sales_killed_midway(database: Settings) -> None:
    """In a process of its own: the flow starts, then its process is killed in a task."""

    daily_sales_killed = flow(**ledger_flow("daily_sales", stages=STAGES, ledger=Ledger(database)))(
        killed_midway
    )
    daily_sales_killed()


def killed_midway() -> None:
    """A flow's body: a task handed to the task runner and a subflow's task are running
    when the process is killed."""
    stalled = export_stalled.submit()
    publish_killed(ingest(0))
    stalled.wait()


def test_a_runners_process_names_stages_from_the_flows_source() -> None:
    """What the runner's process has: the flow's function, the tasks and subflows it
    names (a global, a free variable, a module's attribute)."""
    tasks = types.ModuleType("tasks")
    tasks.export = export  # type: ignore[attr-defined]

    def body() -> None:
        tasks.export(publish_killed(ingest(0)))

    recorded = prefect_hooks._recorded_flows(flow(**ledger_flow("daily_sales"))(body))
    assert recorded == {
        "body": {ingest.task_key: ingest, export.task_key: export},
        "publish-killed": {spark_killed.task_key: spark_killed},
    }


def test_a_runners_process_tells_submitted_runs_from_direct_calls_by_name() -> None:
    def task_run(name: str) -> TaskRun:
        return TaskRun(name=name, task_key=export.task_key, dynamic_key="0", flow_run_id=uuid4())

    assert prefect_hooks._stage_of(task_run("export[2]"), export) == "Data Export[2]"
    assert prefect_hooks._stage_of(task_run("export-a1b"), export) == "Data Export"
    assert prefect_hooks._stage_of(task_run("export[x]"), export) is None
    own_names = export.with_options(task_run_name="export-{rows}")
    assert prefect_hooks._stage_of(task_run("export-5"), own_names) is None


def test_a_cancellation_its_runner_owns_fails_the_run(
    database: Settings, db: Connection, run_dbt: RunDbt
) -> None:
    """A runner or worker that owns cancellation kills the flow's process and sets
    Cancelled itself, never Cancelling in the flow's process; then it calls the flow's
    on_cancellation hooks, as this test does."""
    flow_process = multiprocessing.get_context("spawn").Process(
        target=daily_sales_killed_midway, args=(database,)
    )
    flow_process.start()
    flow_process.join()
    assert flow_process.exitcode == -signal.SIGKILL
    with get_client(sync_client=True) as client:
        (killed,) = [
            r
            for r in client.read_flow_runs()
            if r.state and r.state.is_running() and r.parent_task_run_id is None
        ]
        client.set_flow_run_state(killed.id, Cancelled(message="cancelled by its runner"))
        killed = client.read_flow_run(killed.id)

    # The runner loads the flow from its source, as here: not the object that ran.
    daily_sales = flow(**ledger_flow("daily_sales", stages=STAGES, ledger=Ledger(database)))(
        killed_midway
    )
    assert killed.state is not None
    for hook in daily_sales.on_cancellation_hooks:
        hook(daily_sales, killed, killed.state)
    tables = derived(db, run_dbt, str(killed.id))
    run, stages = tables["run"], tables["stages"]

    assert (run["status"], run["error_message"]) == ("failed", "cancelled by its runner")
    assert close(run["completed_at"], killed.state.timestamp)
    assert stages["Data Ingestion"]["status"] == "completed"
    left_open = ["Data Export[0]", "publish-killed", "publish-killed/Spark Processing"]
    for name in left_open:
        stage = stages[name]
        assert (stage["status"], stage["attempts"]) == ("failed", 1), name
        assert stage["error_message"] == "cancelled by its runner", name
        assert close(stage["completed_at"], killed.state.timestamp), name
