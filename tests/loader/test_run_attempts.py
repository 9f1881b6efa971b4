"""Runs have attempts: a flow retried under the same run key re-opens its run.

Every way in carries `run_attempt` to raw (API, async API, CLI, the parked and COPY paths),
and `init` adds the column to a ledger created before it existed.
"""

from __future__ import annotations

import asyncio
import pickle
from datetime import UTC, datetime
from typing import Any

import pytest
from psycopg import errors

from loader import Ledger, RejectedEventsError
from loader.asynchronous import AsyncLedger
from loader.connection import Connection
from loader.schema import create_raw_schema
from loader.settings import Settings
from tests.loader.test_cli import ledger_cli, ok
from tests.support import query

pytestmark = pytest.mark.pg15

T0 = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)

EVENTS_SQL = """
select stages.stage_name, events.status, events.attempt, events.run_attempt
from raw.run_events as events
inner join raw.runs on runs.pipeline_id = events.pipeline_id
left join raw.stages on stages.stage_id = events.stage_id
where runs.run_key = %s
order by events.run_attempt, events.event_time, stages.stage_name nulls first, events.status
"""


def events_of(db: Connection, run_key: str) -> list[tuple[Any, ...]]:
    return [tuple(row.values()) for row in query(db, EVENTS_SQL, [run_key])]


def test_a_retried_flow_starts_its_run_again_and_every_event_carries_the_attempt(
    ledger: Ledger, db: Connection
) -> None:
    first = ledger.start_run("daily_sales", run_key="flow-1", stages=["load"], at=T0)
    first.failed("boom", at=T0)
    retry = ledger.start_run("daily_sales", run_key="flow-1", stages=["load"], at=T0, run_attempt=2)
    # Starting the same attempt again records nothing new, as for attempt 1.
    ledger.start_run("daily_sales", run_key="flow-1", stages=["load"], at=T0, run_attempt=2)
    with retry.stage("load") as stage:
        stage.records = 5
    retry.completed(at=T0)

    assert (first.run_attempt, retry.run_attempt, retry.id) == (1, 2, first.id)
    assert "run_attempt=2" in repr(retry)
    assert events_of(db, "flow-1") == [
        (None, "failed", 1, 1),
        (None, "running", 1, 1),
        ("load", "pending", 1, 1),
        (None, "completed", 1, 2),
        (None, "running", 1, 2),
        ("load", "pending", 1, 2),
        ("load", "running", 1, 2),
        ("load", "completed", 1, 2),
    ]


def test_ledger_run_attach_and_pickling_keep_the_run_attempt(
    ledger: Ledger, db: Connection
) -> None:
    with ledger.run("daily_sales", run_key="flow-2", run_attempt=3) as run:
        assert run.run_attempt == 3
        unpickled = pickle.loads(pickle.dumps(run.stage("extract", attempt=2)))
        assert (unpickled.run.run_attempt, unpickled.attempt) == (3, 2)
        unpickled.started(at=T0)
        assert ledger.attach(run).run_attempt == 3
        assert ledger.attach("flow-2").run_attempt == 1
        assert ledger.attach(run.id or 0, run_attempt=4).run_attempt == 4
        ledger.attach(run, run_attempt=4).record("running", at=T0)

    assert set(events_of(db, "flow-2")) == {
        (None, "completed", 1, 3),
        (None, "running", 1, 3),
        (None, "running", 1, 4),
        ("extract", "running", 2, 3),
    }


def test_async_runs_carry_the_run_attempt(database: Settings, db: Connection) -> None:
    async def flow() -> int:
        async with (
            AsyncLedger(database) as ledger,
            ledger.run("daily_sales", run_key="flow-3", run_attempt=2) as run,
        ):
            async with run.stage("load"):
                pass
            return ledger.attach(run).run_attempt

    assert asyncio.run(flow()) == 2
    assert {row[3] for row in events_of(db, "flow-3")} == {2}


def test_a_bad_run_attempt_is_rejected(ledger: Ledger) -> None:
    with pytest.raises(RejectedEventsError, match=r"run_attempt: 0 is out of range \(1 to"):
        ledger.start_run("daily_sales", run_key="flow-4", run_attempt=0)


def test_parked_and_copied_events_keep_their_run_attempt(ledger: Ledger, db: Connection) -> None:
    # Nothing names flow-5's pipeline yet: the event waits in raw.parked_events.
    result = ledger.emit({"run_key": "flow-5", "status": "running", "run_attempt": 2})
    assert result.parked == 1
    assert query(db, "select run_attempt from raw.parked_events") == [{"run_attempt": 2}]
    # More than a job's call: the batch goes through COPY, and unparks the waiting one.
    ledger.emit_many(
        {
            "run_key": "flow-5",
            "pipeline_name": "daily_sales",
            "stage_name": f"s{number}",
            "status": "running",
            "run_attempt": 2,
        }
        for number in range(101)
    )
    assert query(db, "select count(*) as n from raw.parked_events") == [{"n": 0}]
    assert query(
        db, "select run_attempt, count(*) as n from raw.run_events group by run_attempt"
    ) == [{"run_attempt": 2, "n": 102}]


def test_cli_start_stage_and_finish_take_the_run_attempt(
    database: Settings, db: Connection
) -> None:
    ok(ledger_cli(database, "start", "daily_sales", "--run-key", "flow-6"))
    key = "key:flow-6"
    ok(ledger_cli(database, "start", "daily_sales", "--run-key", "flow-6", "--run-attempt", "2"))
    ok(ledger_cli(database, "stage", key, "load", "failed", "--attempt", "2", "--run-attempt", "2"))
    ok(ledger_cli(database, "finish", key, "completed", "--run-attempt", "2"))
    assert events_of(db, "flow-6") == [
        (None, "running", 1, 1),
        (None, "running", 1, 2),
        ("load", "failed", 2, 2),
        (None, "completed", 1, 2),
    ]


def test_init_adds_run_attempt_to_a_ledger_created_before_it(
    ledger: Ledger, db: Connection
) -> None:
    ledger.start_run("daily_sales", run_key="flow-7")
    db.execute("alter table raw.run_events drop column run_attempt")
    db.execute("alter table raw.parked_events drop column run_attempt")

    create_raw_schema(db)

    assert query(db, "select run_attempt from raw.run_events") == [{"run_attempt": 1}]
    with pytest.raises(errors.CheckViolation, match="run_events_run_attempt_check"):
        db.execute("update raw.run_events set run_attempt = 0")
    columns = query(
        db,
        "select table_name, column_default, is_nullable from information_schema.columns"
        " where table_schema = 'raw' and column_name = 'run_attempt' order by 1",
    )
    assert columns == [
        {"table_name": "parked_events", "column_default": "1", "is_nullable": "NO"},
        {"table_name": "run_events", "column_default": "1", "is_nullable": "NO"},
    ]
