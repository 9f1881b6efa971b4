"""One Ledger shared by threads, by an event loop, and across a fork: nothing lost, nothing
left open, and the event loop never waits on the database."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import multiprocessing
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg.pq import TransactionStatus

from loader import AsyncLedger, AsyncRun, Ledger, Settings, delivery
from loader.connection import Connection, connect
from tests.support import query

THREADS = 16
ROUNDS = 3


@pytest.fixture
def settings(database: Settings, db: Connection, tmp_path: Path) -> Settings:
    return dataclasses.replace(database, spool_dir=tmp_path / "spool")


@pytest.fixture
def shared(settings: Settings) -> Iterator[Ledger]:
    with Ledger(settings) as ledger:
        yield ledger


def count(db: Connection, where: str = "true") -> int:
    return int(query(db, f"select count(*) as n from raw.run_events where {where}")[0]["n"])


def spooled(settings: Settings) -> list[Path]:
    return sorted(settings.spool_dir.rglob("*.jsonl"))


def test_sixteen_threads_sharing_one_ledger_lose_nothing_and_leave_nothing_open(
    shared: Ledger, settings: Settings, db: Connection
) -> None:
    """Prefect's default task runner: every task of a flow records on the flow's Ledger."""
    run = shared.start_run("threaded", run_key="threads-1")
    barrier = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def task(number: int) -> None:
        try:
            for round_number in range(1, ROUNDS + 1):
                barrier.wait()  # every thread calls at the same moment
                stage = run.stage(f"round{round_number}-task{number}")  # a new stage
                stage.started()
                stage.completed(records=number)
        except Exception as error:  # noqa: BLE001  # reported below, with the others
            errors.append(error)
            barrier.abort()  # the other threads stop waiting for this one

    threads = [threading.Thread(target=task, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    # Seen from another connection: every event committed.
    assert count(db) == 1 + THREADS * ROUNDS * 2
    assert count(db, "status = 'completed'") == THREADS * ROUNDS
    assert shared.connection().info.transaction_status == TransactionStatus.IDLE
    assert spooled(settings) == [], "nothing was spooled: the database was up all along"


class Bug(Exception):
    """A failure inside a call that is not the database's."""


@pytest.mark.parametrize("failure", [Bug, KeyboardInterrupt])
def test_a_call_that_fails_inside_a_transaction_leaves_nothing_open(
    shared: Ledger, db: Connection, monkeypatch: pytest.MonkeyPatch, failure: type[BaseException]
) -> None:
    run = shared.start_run("p", run_key="failing-call")
    write_batch = delivery.write_batch

    def fails_mid_transaction(conn: Connection, *args: object, **kwargs: object) -> None:
        conn.execute("begin")
        conn.execute("create table raw.left_open ()")
        raise failure

    monkeypatch.setattr(delivery, "write_batch", fails_mid_transaction)
    with pytest.raises(failure):
        run.stage("extract").started()
    monkeypatch.setattr(delivery, "write_batch", write_batch)

    run.completed()  # the next call: committed, not swallowed by a transaction left open

    assert query(db, "select to_regclass('raw.left_open') as t") == [{"t": None}]
    assert count(db, "status = 'completed'") == 1
    assert shared.connection().info.transaction_status == TransactionStatus.IDLE


def test_an_async_flow_keeps_its_event_loop_responsive_while_the_database_is_locked(
    settings: Settings, db: Connection
) -> None:
    """Calls wait on a lock for a second; a ticker on the same loop ticks all the while."""

    async def stage_task(run: AsyncRun, number: int) -> None:
        async with run.stage(f"s{number}") as stage:
            stage.records = number

    async def flow() -> list[float]:
        ticks: list[float] = []

        async def ticker() -> None:
            while True:
                ticks.append(time.monotonic())
                await asyncio.sleep(0.01)

        async with (
            AsyncLedger(settings) as ledger,
            ledger.run("async_flow", run_key="async-1", stages=["s0", "s1"]) as run,
        ):
            with connect(settings) as blocker:
                blocker.execute("lock table raw.run_events in access exclusive mode")
                ticking = asyncio.create_task(ticker())
                locked_at = time.monotonic()
                tasks = asyncio.gather(*(stage_task(run, n) for n in range(8)))
                await asyncio.sleep(1.0)
                assert not tasks.done(), "the calls wait on the lock"
                blocker.rollback()
            await tasks
            ticking.cancel()
        return [tick for tick in ticks if tick >= locked_at]

    ticks = asyncio.run(flow())

    gaps = [later - earlier for earlier, later in itertools.pairwise(ticks)]
    assert len(ticks) >= 50, "the ticker kept ticking while the calls waited"
    assert max(gaps) < 0.25
    assert count(db) == 3 + 8 * 2 + 1
    assert count(db, "status = 'completed' and records_processed = 7") == 1


def test_an_async_call_is_carried_out_even_when_its_task_is_cancelled(
    settings: Settings, db: Connection
) -> None:
    async def flow() -> None:
        async with AsyncLedger(settings) as ledger:
            run = await ledger.start_run("async_flow", run_key="cancelled-1")
            with connect(settings) as blocker:
                blocker.execute("lock table raw.run_events in access exclusive mode")
                task = asyncio.create_task(run.stage("extract").started())
                await asyncio.sleep(0.2)
                task.cancel()
                blocker.rollback()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(flow())  # aclose waits for the calls made before it

    assert count(db, "status = 'running'") == 2


def record_in_child(ledger: Ledger, run_key: str) -> None:
    with ledger:  # closed on the way out, as a job does
        ledger.attach(run_key).stage("child").started()


def test_a_ledger_used_after_a_fork_leaves_the_parents_connection_alone(
    shared: Ledger, db: Connection
) -> None:
    run = shared.start_run("forked", run_key="fork-1")
    parent_connection = shared.connection()
    child = multiprocessing.get_context("fork").Process(
        target=record_in_child, args=(shared, "fork-1")
    )
    child.start()
    child.join()

    run.stage("parent").started()

    assert child.exitcode == 0
    assert shared.connection() is parent_connection, "the parent's session was not ended"
    assert count(db, "status = 'running'") == 3
