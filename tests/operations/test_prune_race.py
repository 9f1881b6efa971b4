"""`prune` racing an ingest: a late event either keeps its run or is quarantined (issue 10).

Real sessions, ordered by locks rather than sleeps: a third session stands for a batch
already writing the run (its row share-locked and the run's advisory lock held shared,
as the writer holds them); prune starts and waits for it; a late event for the run is
ingested; then the third session lets go.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta

import pytest

from loader import Ledger, RejectedEventsError
from loader.batch import Candidate
from loader.connection import Connection, connect
from loader.events import document_bytes, parse_event
from loader.prune import PruneResult, prune
from loader.settings import Settings
from loader.writer import write_batch
from tests.operations.test_prune import CUTOFF, T0, events_of, finished_run
from tests.support import query

pytestmark = pytest.mark.pg15

RUN_LOCK_SPACE = 0x1ED6E3  # loader.locks: the writer's per-run advisory locks
WAIT_SECONDS = 20


def waiting_sessions(db: Connection) -> int:
    """How many sessions of this database wait for a lock now."""
    [row] = query(
        db,
        "select count(*) as n from pg_locks inner join pg_stat_activity using (pid)"
        " where not granted and datname = current_database()",
    )
    return int(row["n"])


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.02)


def test_a_late_event_during_prune_keeps_its_run_or_is_quarantined(
    ledger: Ledger, db: Connection, database: Settings, run_dbt: Callable[..., None]
) -> None:
    finished_run(ledger, "old", day=1)
    run_dbt("run")
    [run] = query(db, "select pipeline_id from raw.runs where run_key = 'old'")
    late = {"run_key": "old", "status": "running", "event_time": T0 + timedelta(days=1)}

    with (
        connect(database) as batch,
        connect(database, autocommit=True) as pruner,
        ThreadPoolExecutor(max_workers=2) as pool,
    ):
        # A batch writing this run right now, holding what the writer holds until commit.
        batch.execute("select from raw.runs where pipeline_id = %s for share", [run["pipeline_id"]])
        batch.execute(
            "select pg_advisory_xact_lock_shared(%s, %s::integer)",
            [RUN_LOCK_SPACE, run["pipeline_id"]],
        )
        pruning: Future[PruneResult] = pool.submit(prune, pruner, before=CUTOFF)
        wait_until(lambda: waiting_sessions(db) >= 1 or pruning.done(), "prune waits")
        assert not pruning.done(), "prune did not wait for the batch writing the run"

        loading = pool.submit(ledger.emit, late)
        wait_until(lambda: loading.done() or waiting_sessions(db) >= 2, "the late event")
        batch.commit()
        pruning.result(timeout=WAIT_SECONDS)
        rejected = loading.exception(timeout=WAIT_SECONDS)
    quarantined = isinstance(rejected, RejectedEventsError)
    if rejected is not None and not quarantined:
        raise rejected
    if quarantined:
        assert "was pruned at" in str(rejected)

    [registry] = query(db, "select pruned_at from raw.runs where run_key = 'old'")
    if quarantined:  # prune closed the run first: the late event waited, then saw it closed
        assert registry["pruned_at"] is not None
        assert events_of(db) == {"old": 0}
    else:  # the late event came first: the run is kept whole, late event included
        assert registry["pruned_at"] is None
        assert events_of(db) == {"old": 6}

    run_dbt("run")
    [built] = query(db, "select status, completed_at from public.pipelines")
    assert built["status"] == "completed"


@pytest.mark.parametrize(
    "size",
    [
        pytest.param(1, id="a job's event: the one-row statement"),
        pytest.param(3, id="a few events: the resolved statement"),
        pytest.param(150, id="a bulk batch: one COPY"),
    ],
)
def test_a_batch_waits_for_prune_closing_its_run_then_quarantines(
    ledger: Ledger, db: Connection, database: Settings, size: int
) -> None:
    """Each way into raw.run_events takes the run's lock: while prune holds it, closing the
    run, the batch waits; then it sees the run closed and its late events go to the
    quarantine, none into the closed run."""
    finished_run(ledger, "old", day=1)
    [run] = query(db, "select pipeline_id from raw.runs where run_key = 'old'")
    late = [
        {"run_key": "old", "status": "running", "event_time": T0 + timedelta(days=1, seconds=n)}
        for n in range(size)
    ]
    batch = [
        Candidate(parse_event(event), document_bytes(event), n) for n, event in enumerate(late)
    ]
    with (
        connect(database) as pruner,
        connect(database, autocommit=True) as loader,
        ThreadPoolExecutor(max_workers=1) as pool,
    ):
        # What prune holds while it closes the run, until it commits.
        pruner.execute(
            "select pg_advisory_xact_lock(%s, %s::integer)", [RUN_LOCK_SPACE, run["pipeline_id"]]
        )
        pruner.execute(
            "update raw.runs set pruned_at = now() where pipeline_id = %s", [run["pipeline_id"]]
        )
        pruner.execute("delete from raw.run_events where pipeline_id = %s", [run["pipeline_id"]])
        loading = pool.submit(write_batch, loader, batch, source="late")
        wait_until(lambda: waiting_sessions(db) >= 1 or loading.done(), "the batch waits")
        assert not loading.done(), "the batch did not wait for prune closing its run"
        pruner.commit()
        result = loading.result(timeout=WAIT_SECONDS)
    assert (result.accepted, result.rejected) == (0, size)
    assert all("was pruned at" in str(rejection) for rejection in result.rejections)
    assert events_of(db) == {"old": 0}
