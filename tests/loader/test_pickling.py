"""Handles across processes: a Run started in the parent is recorded on by pool workers,
with the database up and during an outage (when the run has no integer id yet)."""

from __future__ import annotations

import dataclasses
import multiprocessing
import pickle
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from loader import Ledger, Settings
from loader.connection import Connection
from tests.support import query
from tests.support.gate import Gate
from tests.support.jobs import record_stage, record_stage_attached

STAGES = ["extract", "transform", "load", "export"]
STAGE_EVENTS_SQL = """
select stages.stage_name, events.status, events.records_processed
from raw.run_events as events
inner join raw.runs using (pipeline_id)
inner join raw.stages using (stage_id)
where runs.run_key = %s and events.status <> 'pending'
order by 1, 2
"""


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessPoolExecutor]:
    """Spawned workers: they share nothing with the parent but what is pickled to them."""
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as workers:
        yield workers


def recorded_stages(db: Connection, run_key: str) -> list[tuple[str, str, int | None]]:
    return [
        (row["stage_name"], row["status"], row["records_processed"])
        for row in query(db, STAGE_EVENTS_SQL, [run_key])
    ]


def expected(stages: list[str]) -> list[tuple[str, str, int | None]]:
    return sorted(
        [(name, "completed", len(name)) for name in stages]
        + [(name, "running", None) for name in stages]
    )


def test_ledger_run_and_stage_pickle_and_record_after_unpickling(
    database: Settings, db: Connection, tmp_path: Path
) -> None:
    with Ledger(dataclasses.replace(database, spool_dir=tmp_path)) as ledger:
        run = ledger.start_run("pickled", run_key="pickle-1", stages=["extract"])
        stage = pickle.loads(pickle.dumps(run.stage("extract")))
        assert (stage.run.id, stage.run.run_key, stage.name) == (run.id, "pickle-1", "extract")
        stage.started()
        stage.completed(records=7)
        stage.run.ledger.close()
    assert recorded_stages(db, "pickle-1") == [
        ("extract", "completed", 7),
        ("extract", "running", None),
    ]


def test_process_pool_workers_record_stages_of_a_run_started_in_the_parent(
    database: Settings, db: Connection, tmp_path: Path, pool: ProcessPoolExecutor
) -> None:
    settings = dataclasses.replace(database, spool_dir=tmp_path / "spool")
    with Ledger(settings) as ledger:
        run = ledger.start_run("pooled", run_key="pool-1", stages=STAGES)
        assert isinstance(run.id, int)
        pids = set(pool.map(record_stage, [run] * len(STAGES), STAGES))
        run.completed()

    assert len(pids) >= 1
    assert recorded_stages(db, "pool-1") == expected(STAGES)
    assert list((tmp_path / "spool").rglob("*.jsonl")) == []


def test_during_an_outage_workers_record_by_run_key_and_nothing_is_lost(
    database: Settings, db: Connection, tmp_path: Path, pool: ProcessPoolExecutor
) -> None:
    with (
        Gate(database, mode="refuse") as gate,
        Ledger(gate.settings(spool_dir=tmp_path / "spool")) as ledger,
    ):
        run = ledger.start_run("pooled", run_key="pool-outage", stages=STAGES)
        assert run.id is None, "the database is down: no integer id yet"
        with pytest.raises(TypeError, match="pass the Run or its run_key"):
            ledger.attach(run.id)  # type: ignore[arg-type]  # what a job might try

        # The documented ways: hand over the Run itself, or its run_key.
        list(pool.map(record_stage, [run, run], STAGES[:2]))
        handles = [run, run.run_key]
        list(pool.map(record_stage_attached, [ledger] * 2, handles, STAGES[2:]))
        run.completed()
        spool_files = list((tmp_path / "spool").rglob("*.jsonl"))
        assert len(spool_files) >= 2, "the parent's file and the workers' files"

        gate.mode = "open"
        delivered = ledger.flush()

    assert (delivered.rejected, delivered.spooled) == (0, 0)
    assert delivered.accepted == 1 + len(STAGES) + 2 * len(STAGES) + 1
    assert recorded_stages(db, "pool-outage") == expected(STAGES)
    assert list((tmp_path / "spool").rglob("*.jsonl")) == []
