"""Never lose an event: the database stops or crashes in the middle of a job.

These tests run their own embedded server (stopping the shared one would disturb the
other modules) and compare every disturbed run with an undisturbed run of the same job.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import psycopg
import pytest

from loader import Ledger, RejectedEventsError, Settings, TransientError, embedded
from loader.connection import connect
from loader.delivery import backoff_for
from loader.ingest import ingest_stream
from loader.spool import Spool, database_folder
from tests.support import BUILD_LEDGER_TABLES, dbt, query
from tests.support.gate import Gate
from tests.support.own_server import fresh_database

T0 = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
STAGES = ("extract", "transform", "load")
# Keyed by run_key and stage name, not by id: a killed transaction spends identity
# values, so the ids of a disturbed database may differ from an undisturbed one's.
TABLES_SQL = {
    "pipelines": "select run_key, pipeline_name, status, created_at, completed_at,"
    " records_processed, error_message from public.pipelines order by run_key",
    "pipeline_stages": "select runs.run_key, stages.stage_name, stages.status,"
    " stages.error_message, stages.records_processed, stages.started_at,"
    " stages.completed_at, stages.attempts from public.pipeline_stages as stages"
    " inner join public.pipelines as runs on stages.pipeline_id = runs.id"
    " order by runs.run_key, stages.stage_name",
}


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def nightly_job(ledger: Ledger, between_stages: Callable[[int], None]) -> None:
    """A job with retries and heartbeats; `between_stages(n)` runs after stage n."""
    run = ledger.start_run("nightly", run_key="nightly-1", stages=STAGES, at=at(0))
    run.record("running", at=at(1))
    for number, name in enumerate(STAGES):
        minute = 10 * (number + 1)
        stage = run.stage(name)
        stage.started(at=at(minute))
        stage.heartbeat(records=50 * number, at=at(minute + 1))
        if name == "transform":
            stage.failed("worker lost", at=at(minute + 2))
            stage = run.stage(name, attempt=2)
            stage.started(at=at(minute + 3))
        stage.completed(records=100 * (number + 1), at=at(minute + 5))
        between_stages(number)
    run.completed(at=at(60))


def wait_until_probed(settings: Settings) -> None:
    backoff = backoff_for(settings)
    deadline = time.monotonic() + 10 * settings.connect_timeout
    while backoff.failures and time.monotonic() < deadline:
        time.sleep(backoff.remaining() + 0.05)
        backoff.probe(settings)
    assert not backoff.failures, "the probe did not see the database come back"


def derived_tables(settings: Settings, target: Path) -> dict[str, list[dict[str, Any]]]:
    dbt(settings, target, *BUILD_LEDGER_TABLES)
    with connect(settings) as conn:
        return {name: query(conn, statement) for name, statement in TABLES_SQL.items()}


def event_count(settings: Settings) -> int:
    with connect(settings) as conn:
        return int(query(conn, "select count(*) as n from raw.run_events")[0]["n"])


@pytest.fixture(scope="module")
def undisturbed(server_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    settings = fresh_database(server_dir, "undisturbed", tmp_path_factory.mktemp("spool"))
    with Ledger(settings) as ledger:
        nightly_job(ledger, lambda _: None)
    tables = derived_tables(settings, tmp_path_factory.mktemp("dbt"))
    return {"events": event_count(settings), "tables": tables}


def test_a_stopped_server_loses_and_doubles_nothing(server_dir, undisturbed, tmp_path, caplog):
    settings = fresh_database(server_dir, "stopped", tmp_path / "spool")

    def outage(stage_number: int) -> None:
        if stage_number == 0:
            embedded.stop(server_dir)
        if stage_number == 1:
            embedded.start(server_dir)
            # After a failed connect the ledger spools and only a background probe
            # connects (after a backoff). The job goes on for a moment, as jobs do; its
            # first call after the probe answered delivers the spool, then its own events.
            wait_until_probed(settings)

    with caplog.at_level(logging.WARNING, logger="loader"), Ledger(settings) as ledger:
        nightly_job(ledger, outage)  # the job finishes: no exception reaches it

    unreachable = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(unreachable) == 1, "one warning per outage"
    assert list((tmp_path / "spool").rglob("*.jsonl")) == [], "the spool was delivered"
    assert event_count(settings) == undisturbed["events"]
    assert derived_tables(settings, tmp_path) == undisturbed["tables"]


def test_strict_mode_raises_instead_of_spooling(server_dir, tmp_path):
    settings = fresh_database(server_dir, "strict", tmp_path / "spool")
    strict = dataclasses.replace(settings, strict=True)
    with Ledger(strict) as ledger:
        run = ledger.start_run("nightly", run_key="strict-1", at=at(0))
        embedded.stop(server_dir)
        try:
            with pytest.raises(TransientError):
                run.completed(at=at(5))
        finally:
            embedded.start(server_dir)
    assert not (tmp_path / "spool").exists()


def test_a_stuck_database_costs_the_job_one_statement_timeout(server_dir, tmp_path):
    """A lock held elsewhere makes the insert wait: the timeout turns the wait into spooling."""
    settings = dataclasses.replace(
        fresh_database(server_dir, "stuck", tmp_path / "spool"), statement_timeout=0.5
    )
    with Ledger(settings) as ledger, connect(settings) as blocker:
        run = ledger.start_run("nightly", run_key="stuck-1", at=at(0))
        blocker.execute("lock table raw.run_events in access exclusive mode")
        result = ledger.emit({"pipeline_id": run.id, "status": "completed", "event_time": at(5)})
        assert result.spooled == 1
        blocker.rollback()
        run.record("running", stage_name="late", at=at(6))
    with connect(settings) as conn:
        assert query(conn, "select count(*) as n from raw.run_events") == [{"n": 3}]


def backfill_events() -> list[dict[str, Any]]:
    """A backfill large enough that its COPY is still running when the killer looks."""
    return [
        {
            "run_key": f"backfill-{n // 1000}",
            "pipeline_name": "backfill",
            "stage_name": STAGES[n % 3],
            "status": "completed" if n % 1000 >= 997 else "running",
            "event_time": at(n / 100).isoformat(),
            "records_processed": n,
        }
        for n in range(60_000)
    ]


def test_a_backend_killed_mid_copy_loses_and_doubles_nothing(server_dir, tmp_path):
    calm = fresh_database(server_dir, "calm_backfill", tmp_path / "calm-spool")
    with Ledger(calm) as ledger:
        ledger.emit_many(backfill_events())
    settings = fresh_database(server_dir, "killed", tmp_path / "spool")
    killer = threading.Thread(target=kill_the_copying_backend, args=(settings,))
    with Ledger(settings) as ledger:
        ledger.connection()  # connected before the killer starts watching
        killer.start()
        result = ledger.emit_many(backfill_events())
        killer.join()
        assert result.spooled == 60_000, "the COPY was killed, so the batch was spooled"
        wait_until_accepting(settings)
        delivered = ledger.flush()

    assert (delivered.accepted, delivered.duplicates, delivered.rejected) == (60_000, 0, 0)
    assert event_count(settings) == 60_000
    assert derived_tables(settings, tmp_path / "killed") == derived_tables(calm, tmp_path / "calm")


def kill_the_copying_backend(settings: Settings) -> None:
    """SIGKILL the backend that runs the loader's COPY (the bulk path's into raw.run_events,
    or the full path's into its staging table), as soon as it starts."""
    deadline = time.monotonic() + 20
    with connect(settings, autocommit=True) as watcher:
        while time.monotonic() < deadline:
            row = watcher.execute(
                "select pid from pg_stat_activity"
                " where query ~ '^copy (incoming_events|raw\\.run_events) '"
                " and pid <> pg_backend_pid()"
            ).fetchone()
            if row is not None:
                os.kill(row[0], signal.SIGKILL)
                return
            time.sleep(0.002)
    raise AssertionError("no COPY seen within 20 s")


def wait_until_accepting(settings: Settings) -> None:
    """Wait for crash recovery: the postmaster restarts every backend after a SIGKILL."""
    deadline = time.monotonic() + 30
    while True:
        try:
            with connect(settings) as conn:
                conn.execute("select 1")
                return
        except (TransientError, psycopg.OperationalError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_the_cli_spools_while_the_database_is_down_and_flush_delivers(server_dir, tmp_path):
    settings = fresh_database(server_dir, "cli_outage", tmp_path / "spool")
    env = {
        **os.environ,
        **settings.as_env(),
        "LEDGER_SPOOL_DIR": str(tmp_path / "spool"),
        "LEDGER_CONNECT_TIMEOUT": "1",
    }

    def ledger_cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "loader", *args],
            check=False,
            env=env,
            capture_output=True,
            text=True,
        )

    embedded.stop(server_dir)
    try:
        started = ledger_cli("start", "nightly", "--run-key", "k1", "--stage", "extract")
        assert (started.returncode, started.stdout) == (0, "k1\n"), started.stderr
        assert "unreachable" in started.stderr
        assert ledger_cli("stage", "k1", "extract", "completed", "--records", "5").returncode == 0
        assert ledger_cli("finish", "k1", "completed").returncode == 0
    finally:
        embedded.start(server_dir)

    flushed = ledger_cli("flush")
    assert flushed.returncode == 0, flushed.stderr
    assert flushed.stdout.startswith("4 accepted, 0 duplicate, 0 rejected")
    assert ledger_cli("flush").stdout.startswith("0 accepted")
    with connect(settings) as conn:
        statuses = query(conn, "select status, count(*) as n from raw.run_events group by 1")
    assert {row["status"]: row["n"] for row in statuses} == {
        "running": 1,
        "pending": 1,
        "completed": 2,
    }


def test_a_crash_between_delivery_and_removal_duplicates_nothing(server_dir, tmp_path):
    settings = fresh_database(server_dir, "redelivery", tmp_path / "spool")
    spool = Spool(database_folder(settings))
    events = [
        {
            "event_id": str(uuid.UUID(int=n + 1)),
            "run_key": "r",
            "pipeline_name": "p",
            "status": "running",
            "event_time": at(n).isoformat(),
        }
        for n in range(5)
    ]
    spool.append(events)
    with Ledger(settings) as ledger:

        def deliver_then_crash(stream: BinaryIO, source: str) -> None:
            ingest_stream(ledger.connection(), stream, source=source)
            raise KeyboardInterrupt  # the process dies before the file is removed

        with pytest.raises(KeyboardInterrupt):
            spool.deliver(deliver_then_crash)
        assert spool.has_events()
        again = ledger.flush()
    assert (again.accepted, again.duplicates) == (0, len(events))
    assert not spool.has_events()


def test_an_event_rejected_during_an_outage_is_quarantined_at_flush_not_accepted(
    server_dir, tmp_path
):
    """Only valid events are spooled; a rejected one reaches the quarantine, with its reason.

    `{"at": object()}` is not JSON: rejected. Spooled as JSON it would become the string
    "<object object at ...>", which passes the contract at flush.
    """
    settings = fresh_database(server_dir, "rejected_offline", tmp_path / "spool")
    good = {"run_key": "r1", "pipeline_name": "nightly", "status": "running"}
    bad = {"run_key": "r1", "status": "completed", "attributes": {"at": object()}}
    with Gate(settings, mode="refuse") as gate, Ledger(gate.settings()) as ledger:
        with pytest.raises(RejectedEventsError, match="attributes: object is not a JSON value"):
            ledger.emit_many([good, bad])
        gate.mode = "open"
        delivered = ledger.flush()

    assert (delivered.accepted, [str(item) for item in delivered.rejections]) == (
        1,
        ["line 2: attributes: object is not a JSON value"],
    )
    with connect(settings) as conn:
        assert query(conn, "select status from raw.run_events") == [{"status": "running"}]
        [row] = query(
            conn, "select origin, line_number, reason, raw_line from raw.quarantined_events"
        )
    assert (row["origin"], row["line_number"]) == ("api", 2)
    assert row["reason"] == "attributes: object is not a JSON value"
    assert b"<object object at" in bytes(row["raw_line"])
    assert list((tmp_path / "spool").rglob("*.jsonl")) == []
