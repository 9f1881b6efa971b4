"""Access control: log in as a member of each group role and try what it may and may not do.

Roles are cluster-wide: the group roles may exist already (other modules, other sessions
on a shared server) and are left in place; the login users are this session's own.
"""

from __future__ import annotations

import dataclasses
import io
import json
import multiprocessing
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from psycopg import sql

from loader import Ledger, LoadResult
from loader.connection import Connection, connect
from loader.ingest import ingest_stream
from loader.roles import (
    LOADER,
    READER,
    ROLES,
    TRANSFORMER,
    GroupRole,
    can_create_roles,
    create_login,
    create_roles,
    roles_sql,
)
from loader.schema import create_raw_schema
from loader.settings import Settings
from tests.support import PROJECT_DIR, dbt, jsonl, query

pytestmark = pytest.mark.pg15

WORKERS = 4
WAIT_SECONDS = 60  # only so that a broken worker cannot hang the suite
# Login users are cluster-wide too: unique per session, so concurrent sessions on a shared
# server do not drop each other's.
SESSION = f"{os.getpid()}"
LOGINS: dict[str, GroupRole] = {
    "loader": LOADER,
    "transformer": TRANSFORMER,
    "other_transformer": TRANSFORMER,
    "reader": READER,
}
RUNS = 3
INGESTED_EVENTS = 150  # above the writer's pipelined-batch limit: the COPY path
PROBE_MART = "marts.access_probe"

PRIVILEGES_SQL = """
select 'database' as kind, '' as name, datacl::text[] as acl
from pg_database where datname = current_database()
union all
select 'schema', nspname, nspacl::text[]
from pg_namespace where nspname in ('raw', 'staging', 'marts', 'public')
union all
select 'relation', oid::regclass::text, relacl::text[]
from pg_class where relnamespace = 'raw'::regnamespace and relkind = 'r'
union all
select 'column', attrelid::regclass::text || '.' || attname, attacl::text[]
from pg_attribute where attrelid = 'raw.run_events'::regclass and attacl is not null
union all
select 'default', defaclnamespace::regnamespace::text, defaclacl::text[]
from pg_default_acl
order by kind, name
"""


def login_name(key: str) -> str:
    return f"test_roles_{key}_{SESSION}"


def privileges(conn: Connection) -> list[dict[str, Any]]:
    """Every grant the roles script makes in a database, in a comparable form."""
    return [{**row, "acl": sorted(row["acl"] or [])} for row in query(conn, PRIVILEGES_SQL)]


def drop_database(admin: Settings, name: str) -> None:
    maintenance = dataclasses.replace(admin, dbname="postgres")
    with connect(maintenance, autocommit=True) as conn:
        conn.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
        )


@contextmanager
def fresh_database(admin: Settings, name: str, owner: str | None = None) -> Iterator[Settings]:
    """An empty database (owned by `owner`, default the admin), dropped afterwards."""
    drop_database(admin, name)
    maintenance = dataclasses.replace(admin, dbname="postgres")
    with connect(maintenance, autocommit=True) as conn:
        conn.execute(
            sql.SQL("create database {} owner {}").format(
                sql.Identifier(name), sql.Identifier(owner or admin.user)
            )
        )
    try:
        yield dataclasses.replace(admin, dbname=name)
    finally:
        drop_database(admin, name)


@contextmanager
def login_user(admin: Settings, name: str, attributes: str = "") -> Iterator[str]:
    """A LOGIN user of this session with no group role, dropped afterwards."""
    with connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("create role {} login " + attributes).format(sql.Identifier(name)))
    try:
        yield name
    finally:
        with connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(name)))


def ledger_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loader", *args],
        env={**os.environ, **settings.as_env()},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def events(run_key: str, count: int) -> list[dict[str, Any]]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        {
            "event_id": str(uuid.uuid4()),
            "run_key": run_key,
            "pipeline_name": "bulk_pipeline",
            "stage_name": f"stage-{number % 5}",
            "status": "running",
            "event_time": (start + timedelta(seconds=number)).isoformat(),
            "records_processed": number,
        }
        for number in range(count)
    ]


# Fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def admin(database: Settings) -> Settings:
    """The module's database as the server's own user, who must be able to create roles."""
    with connect(database, autocommit=True) as conn:
        if not can_create_roles(conn):
            pytest.skip(f"{database.user} may not create roles on this server")
    return database


@pytest.fixture(scope="module")
def logins(
    admin: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Settings]]:
    """Settings that log in as a member of each group role, after the roles are created."""
    spool = tmp_path_factory.mktemp("spool")
    with connect(admin, autocommit=True) as conn:
        create_roles(conn)
        for key, role in LOGINS.items():
            conn.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(login_name(key))))
            create_login(conn, login_name(key), role)
    # strict: a denied statement must fail the test, not go to the spool.
    yield {
        key: dataclasses.replace(admin, user=login_name(key), strict=True, spool_dir=spool)
        for key in LOGINS
    }
    with connect(admin, autocommit=True) as conn:
        for key in LOGINS:
            name = sql.Identifier(login_name(key))
            conn.execute(sql.SQL("drop owned by {}").format(name))
            conn.execute(sql.SQL("drop role {}").format(name))


@pytest.fixture(scope="module")
def dbt_as(logins: dict[str, Settings], dbt_dir: Path) -> Callable[..., None]:
    """Run a dbt command of this project logged in as one of the logins (by key)."""

    def run(key: str, *args: str) -> None:
        dbt(logins[key], dbt_dir, *args)

    return run


@pytest.fixture(scope="module")
def loaded(logins: dict[str, Settings]) -> LoadResult:
    """Runs recorded through the API and a file ingested, logged in as the loader."""
    with Ledger(logins["loader"], source="roles-test") as ledger:
        for number in range(RUNS):
            with ledger.run("daily_sales", run_key=f"api-{number}", stages=["a", "b"]) as run:
                for name in ("a", "b"):
                    with run.stage(name) as stage:
                        stage.heartbeat(records=1)
                        stage.records = 10
                run.records = 10
        lines = events("bulk-1", INGESTED_EVENTS)
        stream = io.BytesIO(jsonl(lines + lines[:10]) + b'{"status": "done"}\n')
        return ingest_stream(ledger.connection(), stream, source="roles.jsonl")


@pytest.fixture(scope="module")
def built(loaded: LoadResult, dbt_as: Callable[..., None]) -> None:
    """Everything dbt builds, built by a transformer login."""
    dbt_as("transformer", "build")


@pytest.fixture(scope="module")
def probe_mart(built: None, logins: dict[str, Settings]) -> str:
    """A table a transformer created in marts outside dbt (no grants applied to it)."""
    with connect(logins["transformer"], autocommit=True) as conn:
        conn.execute(f"create table {PROBE_MART} as select id, status from public.pipelines")
    return PROBE_MART


@pytest.fixture
def session(logins: dict[str, Settings], request: pytest.FixtureRequest) -> Iterator[Connection]:
    """An autocommit connection logged in as the login the test is parametrized with."""
    with connect(logins[request.param], autocommit=True) as conn:
        yield conn


# Init: idempotent, concurrent, and without CREATEROLE -------------------------------------


def _init(barrier: Any, results: Any, settings: Settings) -> None:
    try:
        with connect(settings) as conn:
            barrier.wait(WAIT_SECONDS)
            create_raw_schema(conn)
            create_roles(conn)
    except Exception as error:
        results.put(f"{type(error).__name__}: {error}")
        raise
    results.put("ready")


def test_init_from_several_processes_and_databases_at_once(admin: Settings) -> None:
    # Two databases initialised at once race on the cluster-wide roles (on a server where
    # they do not exist yet), two processes per database on its schemas and grants.
    with (
        fresh_database(admin, "test_roles_fresh_a") as first,
        fresh_database(admin, "test_roles_fresh_b") as second,
    ):
        context = multiprocessing.get_context("spawn")
        barrier = context.Barrier(WORKERS)
        results = context.Queue()
        targets = [first, second] * (WORKERS // 2)
        processes = [
            context.Process(target=_init, args=(barrier, results, target)) for target in targets
        ]
        for process in processes:
            process.start()
        try:
            outcomes = [results.get(timeout=WAIT_SECONDS) for _ in processes]
        finally:
            for process in processes:
                process.join(WAIT_SECONDS)
            results.close()

        assert outcomes == ["ready"] * WORKERS
        with connect(admin, autocommit=True) as conn:
            create_roles(conn)
            expected = privileges(conn)
            assert query(
                conn,
                "select rolname, rolcanlogin from pg_roles where rolname = any(%s) order by 1",
                [list(ROLES)],
            ) == [{"rolname": role, "rolcanlogin": False} for role in sorted(ROLES)]
        for target in (first, second):
            with connect(target, autocommit=True) as conn:
                assert privileges(conn) == expected


def test_init_twice_changes_nothing(admin: Settings) -> None:
    with connect(admin, autocommit=True) as conn:
        create_roles(conn)
        before = privileges(conn)

    for _ in range(2):
        result = ledger_cli(admin, "init")
        assert result.returncode == 0, result.stderr
        assert result.stdout == "raw schema ready\n"
        assert "roles ready: ledger_loader, ledger_transformer, ledger_reader" in result.stderr

    with connect(admin, autocommit=True) as conn:
        assert privileges(conn) == before
        owners = query(
            conn,
            "select nspname, pg_get_userbyid(nspowner) as owner from pg_namespace"
            " where nspname in ('raw', 'staging', 'marts') order by 1",
        )
    assert owners == [
        {"nspname": name, "owner": admin.user} for name in ("marts", "raw", "staging")
    ]


def test_init_without_createrole_prints_the_sql_for_an_administrator(
    admin: Settings, logins: dict[str, Settings]
) -> None:
    with (
        login_user(admin, login_name("owner")) as owner,
        fresh_database(admin, "test_roles_owned", owner=owner) as owned,
    ):
        as_owner = dataclasses.replace(owned, user=owner)

        init = ledger_cli(as_owner, "init")
        roles = ledger_cli(as_owner, "roles")
        printed = ledger_cli(as_owner, "roles", "--sql")

        assert init.returncode == 0, init.stderr
        assert init.stdout == "raw schema ready\n"
        assert "notice: roles not created" in init.stderr
        assert "needs CREATEROLE" in init.stderr
        assert "python -m loader roles --sql" in init.stderr
        assert roles.returncode == 1
        assert "python -m loader roles --sql" in roles.stderr
        assert printed.returncode == 0
        assert printed.stdout == roles_sql()

        # The administrator runs it (twice: it is idempotent); the loader can then write.
        with connect(owned, autocommit=True) as conn:
            conn.execute(printed.stdout)
            conn.execute(printed.stdout)
            owners = query(
                conn,
                "select distinct pg_get_userbyid(nspowner) as owner from pg_namespace"
                " where nspname in ('raw', 'staging', 'marts')",
            )
        assert owners == [{"owner": owner}]
        loader = dataclasses.replace(logins["loader"], dbname=owned.dbname)
        with Ledger(loader) as ledger:
            assert ledger.start_run("daily_sales", run_key="after-admin").id is not None


def test_init_by_a_createrole_owner_creates_the_grants(
    admin: Settings, logins: dict[str, Settings]
) -> None:
    # A managed server's usual setup: no superuser, but CREATEROLE and its own database.
    with (
        login_user(admin, login_name("manager"), "createrole") as manager,
        fresh_database(admin, "test_roles_managed", owner=manager) as managed,
    ):
        result = ledger_cli(dataclasses.replace(managed, user=manager), "init")

        assert result.returncode == 0, result.stderr
        assert "roles ready" in result.stderr
        loader = dataclasses.replace(logins["loader"], dbname=managed.dbname)
        with Ledger(loader) as ledger:
            assert ledger.start_run("daily_sales", run_key="managed").id is not None
        reader = dataclasses.replace(logins["reader"], dbname=managed.dbname)
        with (
            connect(reader, autocommit=True) as conn,
            pytest.raises(psycopg.errors.InsufficientPrivilege),
        ):
            conn.execute("select * from raw.runs")


# The loader --------------------------------------------------------------------------------


def test_loader_records_events_through_the_api_and_ingest(
    admin: Settings, loaded: LoadResult
) -> None:
    assert (loaded.accepted, loaded.duplicates, loaded.rejected) == (INGESTED_EVENTS, 10, 1)
    with connect(admin, autocommit=True) as conn:
        counts = query(
            conn,
            "select (select count(*) from raw.runs) as runs,"
            " (select count(*) from raw.run_events) as events,"
            " (select count(*) from raw.quarantined_events) as quarantined",
        )
    # Per API run: running and 2 stages pending; per stage running, heartbeat, completed;
    # completed.
    assert counts == [{"runs": RUNS + 1, "events": RUNS * 10 + INGESTED_EVENTS, "quarantined": 1}]


LOADER_DENIED = {
    "read-pipelines": "select * from public.pipelines",
    "read-staging": "select * from staging.stg_raw__runs",
    "read-marts": f"select * from {PROBE_MART}",
    "read-event-contents": "select status, attributes from raw.run_events",
    "read-quarantine": "select * from raw.quarantined_events",
    "delete-events": "delete from raw.run_events",
    "update-events": "update raw.run_events set attempt = attempt + 1",
    "truncate-events": "truncate raw.run_events",
    "prune-runs": "update raw.runs set pruned_at = now()",
    "delete-stages": "delete from raw.stages",
    "alter-events": "alter table raw.run_events add column extra text",
    "drop-quarantine": "drop table raw.quarantined_events",
    "create-in-raw": "create table raw.extra (id int)",
    "create-in-public": "create table public.extra (id int)",
    "create-in-staging": "create table staging.extra (id int)",
    "create-in-marts": "create table marts.extra (id int)",
    "create-schema": "create schema extra",
    "create-role": "create role extra",
}


@pytest.mark.usefixtures("probe_mart")
@pytest.mark.parametrize("session", ["loader"], indirect=True)
@pytest.mark.parametrize("statement", LOADER_DENIED.values(), ids=LOADER_DENIED.keys())
def test_loader_may_not(session: Connection, statement: str) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        session.execute(statement)


# The transformer ---------------------------------------------------------------------------


def test_transformer_builds_everything_dbt_builds_and_owns_it(
    admin: Settings, built: None, dbt_as: Callable[..., None]
) -> None:
    # Another member can rebuild it too: what dbt builds belongs to the group.
    dbt_as("other_transformer", "run")
    dbt_as("other_transformer", "run", "--full-refresh")
    dbt_as("transformer", "source", "freshness")

    with connect(admin, autocommit=True) as conn:
        owners = query(
            conn,
            "select relnamespace::regnamespace::text as schema, relname,"
            " pg_get_userbyid(relowner) as owner"
            " from pg_class where relnamespace in ('staging'::regnamespace, 'public'::regnamespace)"
            " and relkind in ('r', 'v') order by 1, 2",
        )
        runs = query(
            conn, "select status, count(*) as n from public.pipelines group by 1 order by 1"
        )
    assert {row["relname"] for row in owners} >= {
        "stg_raw__run_events",
        "pipelines",
        "pipeline_stages",
    }
    assert {row["owner"] for row in owners} == {TRANSFORMER}
    assert runs == [{"status": "completed", "n": RUNS}, {"status": "running", "n": 1}]


TRANSFORMER_DENIED = {
    "insert-events": (
        "insert into raw.run_events (event_id, pipeline_id, status, event_time)"
        " values (gen_random_uuid(), 1, 'running', now())"
    ),
    "register-runs": "insert into raw.runs (run_key, pipeline_name) values ('x', 'y')",
    "quarantine": (
        "insert into raw.quarantined_events (origin, reason, raw_line) values ('x', 'y', '')"
    ),
    "delete-events": "delete from raw.run_events",
    "update-runs": "update raw.runs set pruned_at = now()",
    "truncate-events": "truncate raw.run_events",
    "alter-runs": "alter table raw.runs add column extra text",
    "create-in-raw": "create table raw.extra (id int)",
    "create-schema": "create schema extra",
    "create-role": "create role extra",
}


@pytest.mark.usefixtures("built")
@pytest.mark.parametrize("session", ["transformer"], indirect=True)
@pytest.mark.parametrize("statement", TRANSFORMER_DENIED.values(), ids=TRANSFORMER_DENIED.keys())
def test_transformer_may_not(session: Connection, statement: str) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        session.execute(statement)


# The reader --------------------------------------------------------------------------------


@pytest.mark.parametrize("session", ["reader"], indirect=True)
def test_reader_reads_what_the_transformer_creates_in_marts_at_once(
    session: Connection, probe_mart: str
) -> None:
    # No grant was run on this table: the default privileges alone let the reader in.
    assert session.execute(f"select count(*) from {probe_mart}").fetchone() == (RUNS + 1,)


READER_DENIED = {
    "read-raw-events": "select * from raw.run_events",
    "read-raw-runs": "select * from raw.runs",
    "read-staging": "select * from staging.stg_raw__run_events",
    "read-public": "select * from public.pipelines",
    "write-marts": f"insert into {PROBE_MART} (id, status) values (0, 'running')",
    "delete-marts": f"delete from {PROBE_MART}",
    "create-in-marts": "create table marts.extra (id int)",
    "create-in-public": "create table public.extra (id int)",
}


@pytest.mark.usefixtures("probe_mart")
@pytest.mark.parametrize("session", ["reader"], indirect=True)
@pytest.mark.parametrize("statement", READER_DENIED.values(), ids=READER_DENIED.keys())
def test_reader_may_not(session: Connection, statement: str) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        session.execute(statement)


def test_dbt_grants_marts_to_ledger_reader() -> None:
    project = yaml.safe_load((PROJECT_DIR / "dbt_project.yml").read_text(encoding="utf-8"))
    assert project["vars"]["reader_roles"] == [READER]


def marts_models(dbt_dir: Path) -> list[str]:
    """The relations this project builds in schema marts, from the last run's manifest."""
    manifest = json.loads((dbt_dir / "target" / "manifest.json").read_text(encoding="utf-8"))
    return sorted(
        f"{node['schema']}.{node['alias']}"
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["schema"] == "marts"
    )


@pytest.mark.usefixtures("built")
@pytest.mark.parametrize(
    "rebuild", [(), ("--full-refresh",)], ids=["incremental-run", "full-refresh"]
)
def test_reader_reads_every_mart_after_every_dbt_run(
    logins: dict[str, Settings],
    dbt_as: Callable[..., None],
    dbt_dir: Path,
    rebuild: tuple[str, ...],
) -> None:
    # Each transformer login replaces what the other built: the group owns the marts.
    for key in ("transformer", "other_transformer"):
        dbt_as(key, "run", *rebuild)
        marts = marts_models(dbt_dir)
        assert "marts.pipeline_health" in marts
        with connect(logins["reader"], autocommit=True) as conn:
            for relation in marts:
                conn.execute(f"select * from {relation} limit 1")
            [(runs,)] = conn.execute("select count(*) from marts.fct_pipeline_runs").fetchall()
            assert runs == RUNS + 1
