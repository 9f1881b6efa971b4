"""Bounded waits per job: after a failed connect, calls spool at once for a while, so a
database that never answers costs a job one connect timeout, not one per call."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from loader import Ledger, Settings, TransientError
from loader.connection import Connection
from loader.delivery import Backoff
from tests.support import query
from tests.support.gate import Gate

CONNECT_TIMEOUT = 2.0  # libpq's least: a smaller one counts as 2 s
CALLS = 13


def test_backoff_doubles_from_one_second_up_to_a_minute_with_jitter() -> None:
    backoff = Backoff()
    assert backoff.remaining() == 0
    waits = []
    for _ in range(12):
        backoff.failed()
        waits.append(backoff.remaining())
    for failures, wait in enumerate(waits, start=1):
        delay = min(60.0, 2.0 ** (failures - 1))
        assert delay / 2 - 0.1 <= wait <= delay, (failures, wait)
    backoff.succeeded()
    assert backoff.remaining() == 0


def test_a_database_that_never_answers_costs_a_job_one_connect_timeout(
    database: Settings, db: Connection, tmp_path: Path
) -> None:
    with Gate(database, mode="blackhole") as gate:
        settings = gate.settings(spool_dir=tmp_path / "spool", connect_timeout=CONNECT_TIMEOUT)
        with Ledger(settings) as ledger:
            began = time.monotonic()
            run = ledger.start_run("slow", run_key="backoff-1", stages=["load"])
            for number in range(CALLS - 1):
                run.stage("load").heartbeat(records=number)
                # Checked as it goes, so that per-call timeouts fail fast, not after 26 s.
                assert time.monotonic() - began < 1.5 * CONNECT_TIMEOUT, f"call {number + 2}"
            assert run.id is None
            assert len(list((tmp_path / "spool").rglob("*.jsonl"))) == 1

            gate.mode = "open"
            # The next call once the backoff has passed delivers the spool, then itself.
            deadline = time.monotonic() + 10
            completed = {
                "event_id": str(uuid.uuid4()),
                "run_key": "backoff-1",
                "status": "completed",
            }
            while ledger.emit(completed).spooled:
                assert time.monotonic() < deadline, "never reconnected"
                time.sleep(0.2)

    assert list((tmp_path / "spool").rglob("*.jsonl")) == []
    rows = query(db, "select status, count(*) as n from raw.run_events group by 1 order by 1")
    assert rows == [
        {"status": "completed", "n": 1},
        {"status": "pending", "n": 1},
        {"status": "running", "n": 1 + CALLS - 1},
    ]


def test_strict_mode_raises_at_once_while_backing_off(
    database: Settings, db: Connection, tmp_path: Path
) -> None:
    with Gate(database, mode="refuse") as gate:
        settings = gate.settings(spool_dir=tmp_path / "spool", strict=True)
        with Ledger(settings) as ledger:
            with pytest.raises(TransientError, match="cannot connect"):
                ledger.emit({"run_key": "strict", "pipeline_name": "p", "status": "running"})
            with pytest.raises(TransientError, match="trying again in the background"):
                ledger.emit({"run_key": "strict", "pipeline_name": "p", "status": "running"})
    assert not (tmp_path / "spool").exists()
