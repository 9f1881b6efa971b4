"""The raw schema and the run registry when several processes reach them at the same moment."""

from __future__ import annotations

import dataclasses
import multiprocessing
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from psycopg import sql

from loader import Ledger
from loader.connection import Connection, connect
from loader.schema import create_raw_schema, raw_schema_exists
from loader.settings import Settings
from tests.support import query

pytestmark = pytest.mark.pg15

WORKERS = 4
WAIT_SECONDS = 60  # only so that a broken worker cannot hang the suite

SCHEMA_SQL = """
select table_name, column_name, data_type, is_nullable
from information_schema.columns
where table_schema = 'raw'
order by table_name, ordinal_position
"""
INDEXES_SQL = "select indexname from pg_indexes where schemaname = 'raw' order by indexname"


@pytest.fixture
def fresh_database(database: Settings) -> Iterator[Settings]:
    """An empty database of this test's own, without the raw schema."""
    maintenance = dataclasses.replace(database, dbname="postgres")
    identifier = sql.Identifier("test_schema_fresh")
    with connect(maintenance, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(identifier))
        conn.execute(sql.SQL("create database {}").format(identifier))
    yield dataclasses.replace(database, dbname="test_schema_fresh")
    with connect(maintenance, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(identifier))


def _init_schema(barrier: Any, results: Any, settings: Settings) -> None:
    try:
        with connect(settings) as conn:
            barrier.wait(WAIT_SECONDS)
            create_raw_schema(conn)
    except Exception as error:
        results.put(f"{type(error).__name__}: {error}")
        raise
    results.put("ready")


def _start_run(barrier: Any, results: Any, settings: Settings) -> None:
    try:
        with Ledger(settings) as ledger:
            ledger.connection()
            barrier.wait(WAIT_SECONDS)
            run = ledger.start_run("daily_sales", run_key="same-key", stages=["extract", "load"])
    except Exception as error:
        results.put(f"{type(error).__name__}: {error}")
        raise
    results.put(run.id)


def at_once(worker: Callable[..., None], settings: Settings) -> list[Any]:
    """Run `worker` in WORKERS processes released together by a barrier; return what each put."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(WORKERS)
    results = context.Queue()
    processes = [
        context.Process(target=worker, args=(barrier, results, settings)) for _ in range(WORKERS)
    ]
    for process in processes:
        process.start()
    try:
        return [results.get(timeout=WAIT_SECONDS) for _ in processes]
    finally:
        for process in processes:
            process.join(WAIT_SECONDS)
        results.close()


def shape(conn: Connection) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return query(conn, SCHEMA_SQL), query(conn, INDEXES_SQL)


def test_create_raw_schema_is_idempotent_and_keeps_data(db: Connection) -> None:
    db.execute("insert into raw.runs (run_key, pipeline_name) values ('flow-1', 'daily_sales')")
    before = shape(db)

    create_raw_schema(db)
    create_raw_schema(db)

    assert shape(db) == before
    assert {row["table_name"] for row in before[0]} == {
        "runs",
        "stages",
        "run_events",
        "quarantined_events",
        "parked_events",
        "parked_runs",
        "openlineage_other_events",
    }
    assert query(db, "select run_key from raw.runs") == [{"run_key": "flow-1"}]


def test_create_raw_schema_on_an_empty_database(fresh_database: Settings, db: Connection) -> None:
    with connect(fresh_database, autocommit=True) as conn:
        assert not raw_schema_exists(conn)
        create_raw_schema(conn)
        assert raw_schema_exists(conn)
        assert shape(conn) == shape(db)


def test_ledger_creates_the_raw_schema_on_first_use(fresh_database: Settings) -> None:
    with Ledger(fresh_database) as ledger:
        run = ledger.start_run("daily_sales", run_key="flow-1")
    with connect(fresh_database, autocommit=True) as conn:
        assert raw_schema_exists(conn)
        assert query(conn, "select pipeline_id from raw.runs") == [{"pipeline_id": run.id}]


def test_create_raw_schema_from_several_processes_at_once(
    fresh_database: Settings, db: Connection
) -> None:
    outcomes = at_once(_init_schema, fresh_database)

    assert outcomes == ["ready"] * WORKERS
    with connect(fresh_database, autocommit=True) as conn:
        assert shape(conn) == shape(db)


def test_processes_starting_the_same_run_key_at_once_get_the_same_id(
    database: Settings, db: Connection
) -> None:
    outcomes = at_once(_start_run, database)

    assert all(isinstance(outcome, int) for outcome in outcomes), outcomes
    assert len(set(outcomes)) == 1
    assert query(db, "select pipeline_id, run_key from raw.runs") == [
        {"pipeline_id": outcomes[0], "run_key": "same-key"}
    ]
    assert query(db, "select count(*) as n from raw.stages") == [{"n": 2}]
    assert query(db, "select count(*) as n from raw.run_events") == [{"n": 3}]
    assert query(db, "select count(*) as n from raw.quarantined_events") == [{"n": 0}]
