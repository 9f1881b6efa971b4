"""Retention: `prune` deletes the raw events of runs that ended, once their rows are final."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from loader import ConfigurationError, Ledger, RejectedEventsError, Settings, embedded
from loader.prune import prune
from tests.support import query

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CUTOFF = T0 + timedelta(days=30)
PIPELINES_SQL = "select * from public.pipelines order by id"


@pytest.fixture(scope="module")
def server(server_dir: Path) -> Settings:
    """A server of this module's own, in place of the suite's shared one.

    Prune compares the events' loading transactions with the builds' snapshot xmin, which
    an open transaction anywhere on the server holds back: another module's long
    transaction would make these runs look unbuilt.
    """
    address = embedded.start(server_dir)
    return Settings(host=str(address.socket_dir), port=address.port)


def finished_run(ledger: Ledger, key: str, day: int, status: str = "completed") -> None:
    start = T0 + timedelta(days=day)
    run = ledger.start_run("nightly", run_key=key, stages=["load"], at=start)
    stage = run.stage("load")
    stage.started(at=start + timedelta(minutes=1))
    stage.completed(records=10 * day, at=start + timedelta(minutes=5))
    run.record(status, at=start + timedelta(minutes=6))


def events_of(db: Any) -> dict[str, int]:
    rows = query(
        db,
        "select runs.run_key, count(events.event_id) as n from raw.runs"
        " left join raw.run_events as events using (pipeline_id) group by runs.run_key",
    )
    return {row["run_key"]: row["n"] for row in rows}


def test_prune_deletes_only_ended_runs_whose_rows_are_final(ledger, db, run_dbt):
    finished_run(ledger, "old-completed", day=1)
    finished_run(ledger, "old-failed", day=2, status="failed")
    finished_run(ledger, "old-with-late-event", day=3)
    finished_run(ledger, "recent", day=40)
    ledger.start_run("nightly", run_key="old-still-running", at=T0 + timedelta(days=3))
    run_dbt("run")
    # Loaded after the last build: these runs' rows are not final (or not there) yet.
    ledger.emit({"run_key": "old-with-late-event", "status": "running", "event_time": T0})
    finished_run(ledger, "old-not-built-yet", day=4)
    built = by_run_key(query(db, PIPELINES_SQL))

    result = prune(db, before=CUTOFF)

    assert (result.runs, result.events, result.kept) == (2, 10, 1)
    assert events_of(db) == {
        "old-completed": 0,
        "old-failed": 0,
        "old-with-late-event": 6,
        "recent": 5,
        "old-still-running": 1,
        "old-not-built-yet": 5,
    }
    run_dbt("run")  # an incremental build keeps the pruned runs' rows as they were
    rebuilt = by_run_key(query(db, PIPELINES_SQL))
    for key in ("old-completed", "old-failed"):
        assert rebuilt[key] == built[key]


def by_run_key(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["run_key"]: row for row in rows}


def test_a_late_event_for_a_pruned_run_is_quarantined(ledger, db, run_dbt):
    finished_run(ledger, "old", day=1)
    run_dbt("run")
    prune(db, before=CUTOFF)

    with pytest.raises(RejectedEventsError, match="was pruned at"):
        ledger.emit({"run_key": "old", "status": "running", "stage_name": "load", "event_time": T0})
    assert events_of(db)["old"] == 0
    [row] = query(db, "select reason from raw.quarantined_events")
    assert "its history is closed" in row["reason"]


def test_prune_refuses_to_run_before_dbt_built_the_tables(db):
    with pytest.raises(ConfigurationError, match="run dbt first"):
        prune(db, before=CUTOFF)


def test_the_prune_command_reports_what_it_did(ledger, db, run_dbt, database):
    finished_run(ledger, "old", day=1)
    run_dbt("run")
    done = subprocess.run(
        [sys.executable, "-m", "loader", "prune", "--before", "2026-01-31"],
        env={**os.environ, **database.as_env()},
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.startswith("pruned 5 raw events of 1 runs that ended before 2026-01-31")
    assert events_of(db) == {"old": 0}


def mart_rows(db: Any, table: str) -> list[dict[str, Any]]:
    rows = query(db, f"select * from marts.{table}")
    return sorted(
        ({k: v for k, v in row.items() if k != "_load_watermark"} for row in rows), key=str
    )


def test_the_marts_keep_the_history_of_pruned_runs(ledger, db, run_dbt):
    finished_run(ledger, "old-1", day=1)
    finished_run(ledger, "old-2", day=2, status="failed")
    run_dbt("run")
    marts = ("fct_pipeline_runs", "fct_stage_runs", "pipeline_daily", "stage_daily")
    before = {table: mart_rows(db, table) for table in marts}

    assert prune(db, before=CUTOFF).runs == 2
    run_dbt("run")
    assert {table: mart_rows(db, table) for table in marts} == before

    # A new run on a pruned run's day: the day is recomputed, the pruned run still counts.
    start = T0 + timedelta(days=1, hours=12)
    run = ledger.start_run("nightly", run_key="new", at=start)
    run.completed(records=5, at=start + timedelta(minutes=1))
    run_dbt("run")
    [day] = query(db, "select * from marts.pipeline_daily where run_date = %s", [start.date()])
    assert (day["runs_started"], day["records_processed"]) == (2, 10 + 5)
