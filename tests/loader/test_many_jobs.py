"""Many jobs at once against a connection limit: "too many clients" is retried briefly,
and what had to be spooled reaches the database with the next jobs, without `flush`.

The limit is the one docs/reliability.md recommends, on the loader's login
(`alter role ... connection limit N`); PostgreSQL refuses a connection over it with the
same SQLSTATE 53300 as one over `max_connections`. Superusers are exempt from it, so
the jobs log in as a plain member of ledger_loader.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from loader import Ledger, Settings
from loader.connection import Connection
from loader.delivery import BUSY_RETRY_SECONDS
from tests.support import query

LOGIN = "etl_jobs_many_jobs_test"
LIMIT = 3
FIRST_WAVE = 6  # while every slot is taken for longer than the retries last: they spool
SECOND_WAVE = 16  # while the slots free up: they retry, land, and deliver the first wave


@pytest.fixture
def login(database: Settings, db: Connection) -> Iterator[Settings]:
    name = sql.Identifier(LOGIN)
    db.execute(sql.SQL("drop role if exists {}").format(name))
    db.execute(
        sql.SQL("create role {} login connection limit {} in role ledger_loader").format(
            name, sql.Literal(LIMIT)
        )
    )
    yield dataclasses.replace(database, user=LOGIN)
    db.execute("select pg_terminate_backend(pid) from pg_stat_activity where usename = %s", [LOGIN])
    db.execute(sql.SQL("drop role {}").format(name))


def hold_slots(settings: Settings, count: int) -> list[psycopg.Connection[tuple[object, ...]]]:
    """Take `count` of the login's connections, as other jobs (or dbt, or BI) would."""
    return [
        psycopg.connect(
            host=settings.host, port=settings.port, dbname=settings.dbname, user=settings.user
        )
        for _ in range(count)
    ]


def start_jobs(env: dict[str, str], wave: str, count: int) -> list[subprocess.Popen[str]]:
    return [
        subprocess.Popen(
            [sys.executable, "-m", "loader", "stage", "many-1", f"{wave}-{n}", "completed"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(count)
    ]


def finish(jobs: list[subprocess.Popen[str]]) -> list[str]:
    """Wait for every job; return their stderr, asserting each exited 0."""
    errors = []
    for job in jobs:
        _, stderr = job.communicate(timeout=60)
        assert job.returncode == 0, stderr
        errors.append(stderr)
    return errors


def test_jobs_over_a_connection_limit_all_land_without_anyone_running_flush(
    login: Settings, database: Settings, db: Connection, tmp_path: Path
) -> None:
    spool_dir = tmp_path / "spool"
    with Ledger(dataclasses.replace(database, spool_dir=spool_dir)) as ledger:
        ledger.start_run("many", run_key="many-1")
    env = {**os.environ, **login.as_env(), "LEDGER_SPOOL_DIR": str(spool_dir)}

    held = hold_slots(login, LIMIT)
    try:
        first = finish(start_jobs(env, "first", FIRST_WAVE))
        assert all("unreachable" in stderr and "too many" in stderr for stderr in first)
        assert len(list(spool_dir.rglob("*.jsonl"))) == FIRST_WAVE

        second = start_jobs(env, "second", SECOND_WAVE)
        time.sleep(min(1.0, BUSY_RETRY_SECONDS / 3))  # every job of the wave is refused now...
        for conn in held[1:]:  # ...then two slots free up; one stays taken (say, BI)
            conn.close()
        finish(second)
    finally:
        for conn in held:
            conn.close()

    assert list(spool_dir.rglob("*.jsonl")) == [], "the second wave delivered the first"
    rows = query(
        db,
        "select split_part(stages.stage_name, '-', 1) as wave, count(*) as n"
        " from raw.run_events inner join raw.stages using (stage_id) group by 1 order by 1",
    )
    assert rows == [{"wave": "first", "n": FIRST_WAVE}, {"wave": "second", "n": SECOND_WAVE}]
