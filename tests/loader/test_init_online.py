"""`ledger init` on a ledger in use: it locks nothing it does not change (issue 10).

A job or a BI query inside a transaction holds a lock on raw's tables. An init with
nothing missing must not queue an ACCESS EXCLUSIVE lock behind it (stalling every job
behind that), and an init that must change a table gives up after its lock timeout with
a message, not a traceback. A database that is not UTF8 is refused.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from psycopg import sql

from loader import ConfigurationError
from loader.connection import Connection, connect, drop_database
from loader.errors import TransientError
from loader.schema import create_raw_schema
from loader.settings import Settings

pytestmark = pytest.mark.pg15

INIT_SECONDS = 15  # init with nothing to do takes well under a second


def ledger_init(database: Settings) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loader", "init"],
        env={**os.environ, **database.as_env()},
        capture_output=True,
        text=True,
        timeout=INIT_SECONDS,
        check=False,
    )


@pytest.fixture
def reader(database: Settings) -> Iterator[Connection]:
    """A session inside a transaction that has read raw.runs (it holds ACCESS SHARE)."""
    with connect(database) as conn:
        conn.execute("select count(*) from raw.runs").fetchone()
        yield conn
        conn.rollback()


def test_init_with_nothing_missing_does_not_wait_for_readers(
    database: Settings, reader: Connection
) -> None:
    started = time.monotonic()
    done = ledger_init(database)
    assert (done.returncode, done.stdout) == (0, "raw schema ready\n")
    assert "Traceback" not in done.stderr
    assert time.monotonic() - started < INIT_SECONDS


def test_init_that_must_alter_a_busy_table_gives_up_with_a_message(
    database: Settings,
) -> None:
    with connect(database, autocommit=True) as conn:
        conn.execute("alter table raw.runs drop column pruned_at")
    try:
        with connect(database) as busy:
            busy.execute("select count(*) from raw.runs").fetchone()
            with connect(database, autocommit=True) as conn:
                with pytest.raises(TransientError, match="the ledger is busy") as error:
                    create_raw_schema(conn, lock_timeout=0.2)
                assert "alter table raw.runs add column if not exists pruned_at" in str(error.value)
            done = ledger_init(database)  # the command: the message, no traceback
            busy.rollback()
        assert done.returncode == 1
        assert done.stderr.startswith("error: init: the ledger is busy")
        assert "Traceback" not in done.stderr
    finally:
        with connect(database, autocommit=True) as conn:
            create_raw_schema(conn)
    with connect(database, autocommit=True) as conn:
        [row] = conn.execute(
            "select count(*) from pg_attribute where attrelid = 'raw.runs'::regclass"
            " and attname = 'pruned_at'"
        ).fetchall()
    assert row == (1,)


def test_init_drops_the_stage_key_of_a_ledger_made_before_and_keeps_its_stages(
    database: Settings, reader: Connection
) -> None:
    """raw.stages had a foreign key to raw.runs; init drops it once, data kept (or gives up
    while a reader holds raw.runs), and an init after that has nothing to do (it does not
    wait for the reader)."""
    key = "select count(*) from pg_constraint where conname = 'stages_pipeline_id_fkey'"
    reader.rollback()  # the earlier schema is made without the reader in the way
    with connect(database, autocommit=True) as conn:
        conn.execute("alter table raw.stages drop constraint if exists stages_pipeline_id_fkey")
        conn.execute(
            "alter table raw.stages add constraint stages_pipeline_id_fkey"
            " foreign key (pipeline_id) references raw.runs (pipeline_id)"
        )
        [(run_id,)] = conn.execute(
            "insert into raw.runs (run_key, pipeline_name) values ('before', 'p')"
            " returning pipeline_id"
        ).fetchall()
        conn.execute(
            "insert into raw.stages (pipeline_id, stage_name) values (%s, 'load')", [run_id]
        )
        # Dropping the key locks raw.runs too (its triggers): a job's open transaction there
        # makes init give up with its message, not wait behind it.
        reader.execute("select count(*) from raw.runs").fetchone()
        with pytest.raises(TransientError, match="the ledger is busy") as error:
            create_raw_schema(conn, lock_timeout=0.2)
        assert "drop constraint if exists stages_pipeline_id_fkey" in str(error.value)
        reader.rollback()
        create_raw_schema(conn)
        assert conn.execute(key).fetchall() == [(0,)]
        assert conn.execute("select stage_name from raw.stages").fetchall() == [("load",)]
    reader.execute("select count(*) from raw.stages").fetchone()
    started = time.monotonic()
    done = ledger_init(database)
    assert (done.returncode, done.stdout) == (0, "raw schema ready\n")
    assert time.monotonic() - started < INIT_SECONDS


def test_init_refuses_a_database_that_is_not_utf8(server: Settings) -> None:
    name = "test_init_latin1"
    drop_database(server, name)
    with connect(dataclasses.replace(server, dbname="postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "create database {} encoding 'LATIN1' template template0"
                " lc_collate 'C' lc_ctype 'C'"
            ).format(sql.Identifier(name))
        )
    try:
        with connect(dataclasses.replace(server, dbname=name), autocommit=True) as conn:
            with pytest.raises(ConfigurationError, match="uses encoding LATIN1; the ledger needs"):
                create_raw_schema(conn)
            [row] = conn.execute("select to_regnamespace('raw') is null").fetchall()
        assert row == (True,)
    finally:
        drop_database(server, name)
