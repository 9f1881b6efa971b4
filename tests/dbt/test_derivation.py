"""The contract's derivation rules, end to end: events through the loader, tables from dbt."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from loader import Ledger
from loader.connection import Connection
from tests.support import BUILD_LEDGER_TABLES, clear_built, query
from tests.support.contract_rules import Delivery, derive_tables

pytestmark = pytest.mark.pg15

T0 = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)

PIPELINES_SQL = """
select run_key, id, status, created_at, completed_at, records_processed, error_message, attempts,
    is_aborted
from public.pipelines
"""
STAGES_SQL = """
select pipelines.run_key, stages.stage_name, stages.id, stages.status, stages.error_message,
    stages.records_processed, stages.started_at, stages.completed_at, stages.attempts,
    stages.run_attempt, stages.is_aborted
from public.pipeline_stages as stages
inner join public.pipelines on stages.pipeline_id = pipelines.id
"""


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def event(
    run_key: str = "run-1",
    status: str = "running",
    minute: float = 0,
    stage: str | None = None,
    **fields: Any,
) -> Delivery:
    return Delivery(
        event_id=fields.pop("event_id", uuid.uuid4()),
        run_key=run_key,
        stage_name=stage,
        status=status,
        event_time=at(minute),
        **fields,
    )


def deliver(ledger: Ledger, deliveries: Iterable[Delivery]) -> None:
    ledger.emit_many(
        {
            "event_id": str(d.event_id),
            "run_key": d.run_key,
            "pipeline_name": "pipeline-" + d.run_key,
            "stage_name": d.stage_name,
            "status": d.status,
            "event_time": d.event_time.isoformat(),
            "records_processed": d.records_processed,
            "error_message": d.error_message,
            "attempt": d.attempt,
            "run_attempt": d.run_attempt,
        }
        for d in deliveries
    )


def tables(conn: Connection) -> tuple[dict[str, dict[str, Any]], dict[tuple[str, str], Any]]:
    runs = {row.pop("run_key"): row for row in query(conn, PIPELINES_SQL)}
    rows = query(conn, STAGES_SQL)
    stages = {(row.pop("run_key"), row.pop("stage_name")): row for row in rows}
    assert len(stages) == len(rows), "a stage name twice in one run"
    return runs, stages


def without_ids(rows: dict[Any, dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    return {key: {k: v for k, v in row.items() if k != "id"} for key, row in rows.items()}


def test_late_heartbeat_after_completion_changes_nothing(ledger, db, run_dbt):
    """The contract's first example: completed at 10:05 stays completed at 10:05."""
    deliver(
        ledger,
        [
            event(stage="load", minute=0),
            event(stage="load", status="completed", minute=5, records_processed=10),
            event(stage="load", minute=6, records_processed=99),
        ],
    )
    run_dbt(*BUILD_LEDGER_TABLES)
    _, stages = tables(db)
    assert stages["run-1", "load"]["status"] == "completed"
    assert stages["run-1", "load"]["completed_at"] == at(5)
    assert stages["run-1", "load"]["records_processed"] == 10


def test_retry_that_succeeds_clears_the_error(ledger, db, run_dbt):
    """The contract's second example: failed try 1, then try 2 running and completed."""
    deliver(
        ledger,
        [
            event(stage="spark", status="failed", minute=2, error_message="OOM"),
            event(stage="spark", minute=3, attempt=2),
            event(stage="spark", status="completed", minute=4, attempt=2),
        ],
    )
    run_dbt(*BUILD_LEDGER_TABLES)
    _, stages = tables(db)
    assert stages["run-1", "spark"] | {"id": None} == {
        "id": None,
        "status": "completed",
        "error_message": None,
        "records_processed": None,
        "started_at": at(3),
        "completed_at": at(4),
        "attempts": 2,
        "run_attempt": 1,
        "is_aborted": False,
    }


def test_a_flow_that_failed_and_completed_when_retried_is_completed(ledger, db, run_dbt):
    """A flow retried under its run key: failed in run attempt 1, completed in 2."""
    deliver(
        ledger,
        [
            event(minute=0),
            event(stage="load", minute=1),
            event(stage="load", status="failed", minute=2, error_message="connection reset"),
            event(status="failed", minute=3, error_message="load failed"),
            event(minute=10, run_attempt=2),
            event(stage="load", minute=11, run_attempt=2),
            event(stage="load", status="completed", minute=12, records_processed=40, run_attempt=2),
            event(status="completed", minute=13, run_attempt=2),
        ],
    )
    run_dbt(*BUILD_LEDGER_TABLES)
    runs, stages = tables(db)
    assert runs["run-1"] | {"id": None} == {
        "id": None,
        "status": "completed",
        "created_at": at(0),
        "completed_at": at(13),
        "records_processed": 40,
        "error_message": None,
        "attempts": 2,
        "is_aborted": False,
    }
    assert (stages["run-1", "load"]["status"], stages["run-1", "load"]["run_attempt"]) == (
        "completed",
        2,
    )


def test_a_retried_flow_reopens_its_run_with_a_stage_event(ledger, db, run_dbt):
    """A failed run whose attempt 2 has only a stage event so far is running again."""
    deliver(ledger, [event(minute=0), event(status="failed", minute=1, error_message="boom")])
    run_dbt(*BUILD_LEDGER_TABLES)
    assert tables(db)[0]["run-1"]["status"] == "failed"
    deliver(ledger, [event(stage="load", minute=5, run_attempt=2)])
    run_dbt(*BUILD_LEDGER_TABLES)
    run = tables(db)[0]["run-1"]
    assert (run["status"], run["completed_at"], run["error_message"], run["attempts"]) == (
        "running",
        None,
        None,
        2,
    )


def test_a_stage_retried_in_run_attempt_2_decides_from_its_events(ledger, db, run_dbt):
    """The retried flow's task counts its tries from 1 again: (2, 1) outranks (1, 2)."""
    deliver(
        ledger,
        [
            event(stage="spark", status="failed", minute=1, error_message="OOM"),
            event(stage="spark", minute=2, attempt=2),
            event(stage="spark", status="failed", minute=3, attempt=2, error_message="OOM again"),
            event(stage="spark", minute=10, run_attempt=2),
            event(stage="spark", status="completed", minute=12, records_processed=9, run_attempt=2),
        ],
    )
    run_dbt(*BUILD_LEDGER_TABLES)
    _, stages = tables(db)
    assert stages["run-1", "spark"] | {"id": None} == {
        "id": None,
        "status": "completed",
        "error_message": None,
        "records_processed": 9,
        "started_at": at(2),
        "completed_at": at(12),
        "attempts": 1,
        "run_attempt": 2,
        "is_aborted": False,
    }


def test_the_same_event_delivered_three_times_counts_once(ledger, db, run_dbt):
    """The contract's third example, across three separate loads."""
    completed = event(status="completed", minute=5, records_processed=7)
    for _ in range(3):
        deliver(ledger, [completed])
    run_dbt(*BUILD_LEDGER_TABLES)
    runs, _ = tables(db)
    assert query(db, "select count(*) as n from raw.run_events") == [{"n": 1}]
    assert runs["run-1"]["status"] == "completed"
    assert runs["run-1"]["records_processed"] == 7


def test_run_failed_without_its_own_message_shows_the_first_failed_stage(ledger, db, run_dbt):
    deliver(
        ledger,
        [
            event(minute=0),
            event(stage="b", status="failed", minute=3, error_message="disk full"),
            event(stage="a", status="failed", minute=3, error_message="timeout"),
            event(stage="c", status="failed", minute=1, attempt=1, error_message="early"),
            event(stage="c", status="completed", minute=2, attempt=2),
            event(status="failed", minute=4),
        ],
    )
    run_dbt(*BUILD_LEDGER_TABLES)
    runs, _ = tables(db)
    assert runs["run-1"]["status"] == "failed"
    assert runs["run-1"]["error_message"] == "a: timeout"


def test_ids_survive_a_full_refresh(ledger, db, run_dbt):
    deliver(ledger, [event(run_key=f"run-{n}", stage=s) for n in range(3) for s in "xy"])
    run_dbt(*BUILD_LEDGER_TABLES)
    before = tables(db)
    run_dbt(*BUILD_LEDGER_TABLES, "--full-refresh")
    assert tables(db) == before
    stage_ids = query(db, "select stage_id as id from raw.stages order by 1")
    assert sorted(row["id"] for row in before[1].values()) == [row["id"] for row in stage_ids]


# A small world makes collisions likely: equal times, repeated ids, many attempts.
_times = st.integers(min_value=0, max_value=3).map(at)
_statuses = st.sampled_from(["pending", "running", "completed", "failed"])
_deliveries = st.builds(
    Delivery,
    event_id=st.sampled_from([uuid.UUID(int=n) for n in range(1, 40)]),
    run_key=st.sampled_from(["r1", "r2"]),
    stage_name=st.sampled_from([None, "load", "Load"]),
    status=_statuses,
    event_time=_times,
    records_processed=st.none() | st.integers(min_value=0, max_value=50),
    error_message=st.none() | st.sampled_from(["boom", "oom"]),
    attempt=st.integers(min_value=1, max_value=2),
    run_attempt=st.integers(min_value=1, max_value=2),
)


@settings(
    max_examples=8,
    deadline=None,
    # Each example costs several dbt runs: report the failing example unshrunk.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    deliveries=st.lists(_deliveries, min_size=1, max_size=30),
    data=st.data(),
)
def test_any_order_batching_and_duplicates_give_the_contract_tables(
    ledger, db, run_dbt, deliveries, data
):
    """Random histories, in random batches with dbt runs between them, match the rules.

    Repeated event_ids may carry different content: the first delivery must win. The
    result must equal a full refresh on the same events, with the same ids.
    """
    clear_built(db)
    cuts = sorted(data.draw(st.sets(st.integers(1, len(deliveries)), max_size=2)))
    bounds = zip([0, *cuts], [*cuts, len(deliveries)], strict=True)
    batches = [deliveries[start:end] for start, end in bounds if start < end]
    for batch in batches:
        deliver(ledger, batch)
        run_dbt(*BUILD_LEDGER_TABLES)

    expected_runs, expected_stages = derive_tables(deliveries)
    incremental = tables(db)
    assert without_ids(incremental[0]) == expected_runs
    assert without_ids(incremental[1]) == expected_stages

    run_dbt(*BUILD_LEDGER_TABLES, "--full-refresh")
    assert tables(db) == incremental


def test_a_load_between_the_two_models_reaches_pipelines_in_the_next_build(ledger, db, run_dbt):
    """A load that commits after pipeline_stages read raw and before pipelines did.

    Building pipelines alone stands for that window: it sees the run's failure while
    pipeline_stages does not yet; the next build must still show the stage's error.
    """
    deliver(ledger, [event(minute=0), event(stage="load", minute=1)])
    run_dbt(*BUILD_LEDGER_TABLES)
    deliver(
        ledger,
        [
            event(stage="load", status="failed", minute=2, error_message="boom"),
            event(status="failed", minute=3),
        ],
    )
    run_dbt("run", "--select", "pipelines")
    assert tables(db)[0]["run-1"]["error_message"] is None  # the window: stale stages
    run_dbt(*BUILD_LEDGER_TABLES)
    assert tables(db)[0]["run-1"]["error_message"] == "load: boom"
