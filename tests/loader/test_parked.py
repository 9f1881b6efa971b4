"""Events of a run the ledger does not know yet wait (parked) for the event naming it.

Whatever the order in which processes deliver a run's events, nothing is quarantined for
arriving before the run's registration; what nobody ever names goes to the quarantine
after LEDGER_PARKED_MAX_AGE, with the reason and its bytes.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from loader import Ledger, embedded
from loader.batch import LoadResult
from loader.connection import Connection, connect
from loader.ingest import ingest_stream
from loader.settings import Settings
from tests.support import BUILD_LEDGER_TABLES, dbt, jsonl, quarantined_lines, query, stored_events
from tests.support.own_server import fresh_database

pytestmark = pytest.mark.pg15

T0 = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)


def event(run_key: str = "run-1", status: str = "running", minute: float = 0, **fields: Any):
    return {
        "event_id": str(uuid.uuid4()),
        "run_key": run_key,
        "status": status,
        "event_time": (T0 + timedelta(minutes=minute)).isoformat(),
        **fields,
    }


def ingest(conn: Connection, events: list[dict[str, Any]], **options: Any) -> LoadResult:
    return ingest_stream(conn, io.BytesIO(jsonl(events)), source="events.jsonl", **options)


def parked(conn: Connection) -> list[dict[str, Any]]:
    return query(
        conn,
        "select run_key, origin, line_number, raw_line from raw.parked_events order by line_number",
    )


def test_an_event_of_a_run_nothing_names_is_parked_whole(db: Connection) -> None:
    nameless = event(stage_name="extract")

    result = ingest(db, [nameless, event(run_key="named", pipeline_name="p")])

    assert (result.accepted, result.parked, result.rejected) == (1, 1, 0)
    [row] = parked(db)
    assert (row["run_key"], row["origin"], row["line_number"]) == ("run-1", "events.jsonl", 1)
    assert json.loads(bytes(row["raw_line"])) == nameless
    assert quarantined_lines(db) == []
    assert query(db, "select run_key from raw.runs") == [{"run_key": "named"}]
    assert query(db, "select run_key, events from raw.parked_runs") == [
        {"run_key": "run-1", "events": 1}
    ]


@pytest.mark.parametrize("batch_lines", [1, 2, 10_000])
def test_the_event_naming_the_run_lands_what_waited_for_it(
    db: Connection, batch_lines: int
) -> None:
    """The name arrives last: in the same batch, or in a later one."""
    waiting = [
        event(stage_name="extract", minute=1),
        event(stage_name="extract", status="completed", minute=2, records_processed=5),
        event(status="completed", minute=3),
    ]
    named = event(minute=0, pipeline_name="daily_sales")

    result = ingest(db, [*waiting, named], batch_lines=batch_lines)

    assert result.accepted + result.unparked == 4
    assert (result.rejected, result.duplicates) == (0, 0)
    assert parked(db) == []
    assert sorted(str(row["event_id"]) for row in stored_events(db)) == sorted(
        e["event_id"] for e in [*waiting, named]
    )
    assert {row["pipeline_name"] for row in stored_events(db)} == {"daily_sales"}


def test_a_parked_event_delivered_again_counts_once(db: Connection) -> None:
    nameless = event()
    ingest(db, [nameless])
    ingest(db, [nameless])  # a retried delivery: still one parked copy

    result = ingest(db, [nameless, event(minute=1, pipeline_name="p")])

    assert len(stored_events(db)) == 2
    assert (result.accepted + result.unparked, result.duplicates) == (2, 1)


def test_parked_events_older_than_the_limit_are_quarantined_with_their_bytes(
    db: Connection,
) -> None:
    nameless = event(run_key="never-named")
    ingest(db, [nameless])
    db.execute("update raw.parked_events set parked_at = now() - interval '2 hours'")

    ingest(db, [event(run_key="other", pipeline_name="p")], parked_max_age=3600)

    [row] = quarantined_lines(db)
    assert row["reason"].startswith(
        "pipeline_name: required, run_key 'never-named' is a new run and nothing named its"
        " pipeline within 3600 seconds"
    )
    assert (row["origin"], row["line_number"]) == ("events.jsonl", 1)
    assert json.loads(bytes(row["raw_line"])) == nameless
    assert parked(db) == []


def test_the_api_parks_too_and_a_later_start_lands_the_stages(ledger: Ledger, db: Connection):
    run = ledger.attach("flow-1")
    run.stage("extract").started(at=T0 + timedelta(minutes=1))
    run.completed(at=T0 + timedelta(minutes=2))
    assert len(parked(db)) == 2

    ledger.start_run("daily_sales", run_key="flow-1", at=T0)

    assert parked(db) == []
    assert len(stored_events(db)) == 3


def test_the_parked_command_lists_what_waits_escaped(database: Settings, db: Connection):
    ingest(db, [event(run_key="evil\x1b[31m\nkey"), event(run_key="evil\x1b[31m\nkey")])

    result = subprocess.run(
        [sys.executable, "-m", "loader", "parked"],
        env={**os.environ, **database.as_env()},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    [header, row] = result.stdout.splitlines()
    assert header.split("\t")[:2] == ["run_key", "events"]
    assert row.split("\t")[:2] == ["evil\\x1b[31m\\nkey", "2"]


def ledger_cli(settings: Settings, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "loader", *args],
        env={**os.environ, **settings.as_env(), "LEDGER_SPOOL_DIR": str(settings.spool_dir)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_a_short_outage_at_start_loses_nothing_across_processes(
    server_dir: Path, tmp_path: Path, dbt_dir: Path
) -> None:
    """The issue's case: `ledger start` spools during an outage; the stage and finish
    calls of other processes reach the database first; flush then lands everything.

    The run key is numeric, and an unrelated run has that number as its id: the calls
    must still name the run by its key.
    """
    settings = fresh_database(server_dir, "short_outage", tmp_path / "spool")
    with Ledger(settings) as ledger:
        unrelated = ledger.start_run("other_pipeline", run_key="unrelated", at=T0)
    run_key = str(unrelated.id)

    embedded.stop(server_dir)
    try:
        printed = ledger_cli(settings, "start", "daily_sales", "--run-key", run_key, "--stage", "a")
    finally:
        embedded.start(server_dir)
    assert printed == f"key:{run_key}", "a numeric run key must not read as an integer id"

    other_process = dataclasses.replace(settings, spool_dir=tmp_path / "other-spool")
    ledger_cli(other_process, "stage", printed, "a", "running")
    ledger_cli(other_process, "stage", printed, "a", "completed", "--records", "7")
    ledger_cli(other_process, "finish", printed, "completed")
    with connect(settings, autocommit=True) as conn:
        assert len(parked(conn)) == 3

    assert "0 rejected" in ledger_cli(settings, "flush")

    with connect(settings, autocommit=True) as conn:
        assert parked(conn) == []
        assert quarantined_lines(conn) == []
        dbt(settings, dbt_dir, *BUILD_LEDGER_TABLES)
        runs = "select run_key, status, records_processed from public.pipelines order by 1"
        assert query(conn, runs) == [
            {"run_key": run_key, "status": "completed", "records_processed": 7},
            {"run_key": "unrelated", "status": "running", "records_processed": None},
        ]
        stages = (
            "select pipelines.run_key, stages.stage_name, stages.status"
            " from public.pipeline_stages as stages"
            " inner join public.pipelines on pipelines.id = stages.pipeline_id"
        )
        assert query(conn, stages) == [
            {"run_key": run_key, "stage_name": "a", "status": "completed"}
        ]
