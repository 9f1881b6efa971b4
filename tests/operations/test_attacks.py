"""Attacks on the roles, by a login in each, over TCP with scram passwords (issue 10).

What must hold: no role's code ever runs with rights that role lacks. Each test plants
code the way a hostile login could (the transformer may create in `public` and replace
what it built by a view), lets the ledger's own commands run, then checks that the code
ran with no more than its author's rights. The planted code tries everything: it logs
who ran it, drops SET ROLE (`set_config('role', 'none')`), and makes its author superuser.
`ledger serve` joins them: run as a `ledger_loader` login, it stores a job's events and
nothing else, whatever the bodies posted to it.

Every test runs on PostgreSQL 15 and 18, each a server of this module's own.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
from psycopg import sql

from loader import Ledger, RejectedEventsError
from loader.connection import connect, drop_database, recreate_database
from loader.prune import prune
from loader.report import print_report
from loader.roles import LOADER, READER, TRANSFORMER, GroupRole, create_login, create_roles
from loader.schema import create_raw_schema
from loader.settings import Settings
from tests.support import query
from tests.support.serve_process import ledger_serve
from tests.support.tcp_server import PG15_BIN, embedded_bin, scram_server

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module", params=["15", "18"])
def cluster(request: pytest.FixtureRequest) -> Iterator[Settings]:
    """One scram-only TCP server per PostgreSQL version for the whole module."""
    with scram_server(PG15_BIN if request.param == "15" else embedded_bin()) as settings:
        yield settings


@dataclasses.dataclass(frozen=True)
class Ledgerdb:
    """A database after `ledger init` as the superuser, and a login in each role."""

    admin: Settings
    logins: dict[GroupRole, Settings]

    @property
    def transformer(self) -> Settings:
        return self.logins[TRANSFORMER]


def init(settings: Settings) -> None:
    """What `ledger init` does, as the superuser the README asks for."""
    with connect(settings, autocommit=True) as conn:
        create_raw_schema(conn)
        create_roles(conn)


@pytest.fixture
def ledger_db(cluster: Settings, tmp_path: Path) -> Iterator[Ledgerdb]:
    name = f"attack_{uuid.uuid4().hex[:8]}"
    admin = recreate_database(cluster, name)
    init(admin)
    logins: dict[GroupRole, Settings] = {}
    with connect(admin, autocommit=True) as conn:
        for role in (LOADER, TRANSFORMER, READER):
            login, password = f"{role}_{name}", secrets.token_urlsafe(12)
            create_login(conn, login, role, password=password)
            logins[role] = dataclasses.replace(
                admin, user=login, password=password, spool_dir=tmp_path / login
            )
    yield Ledgerdb(admin, logins)
    drop_database(cluster, name)
    with connect(cluster, autocommit=True) as conn:
        for settings in logins.values():
            conn.execute(sql.SQL("drop role {}").format(sql.Identifier(settings.user)))


def plant(ledger_db: Ledgerdb, statements: str) -> None:
    """Run `statements` as the transformer's login, as dbt's session would."""
    with connect(ledger_db.transformer, autocommit=True) as conn:
        conn.execute(
            "create table if not exists public.attack_log (who name, door text);"
            " grant insert on public.attack_log to public"
        )
        conn.execute(statements)


def evil_body(ledger_db: Ledgerdb, door: str, result: str) -> str:
    """A plpgsql body that logs its caller, tries to leave SET ROLE, then escalates."""
    attacker = ledger_db.transformer.user
    return f"""
    begin
        insert into public.attack_log values (current_user, '{door}');
        begin
            perform pg_catalog.set_config('role', 'none', true);
            insert into public.attack_log values (current_user, '{door}: role reset');
        exception when others then null;
        end;
        begin
            execute 'alter role "{attacker}" superuser';
        exception when others then null;
        end;
        return {result};
    end
    """


def assert_confined(ledger_db: Ledgerdb, *, allowed: tuple[str, ...] = ()) -> None:
    """The attacker is no superuser, and its code ran as no one but `allowed`."""
    with connect(ledger_db.admin, autocommit=True) as conn:
        [row] = query(
            conn, "select rolsuper from pg_roles where rolname = %s", [ledger_db.transformer.user]
        )
        ran = query(conn, "select who::text, door from public.attack_log")
    assert not row["rolsuper"], f"the transformer's login became superuser: {ran}"
    assert [entry for entry in ran if entry["who"] not in allowed] == []


def build_stand_ins(ledger_db: Ledgerdb, *, pipelines_filter: str = "true") -> None:
    """What dbt builds, as the transformer could rebuild it: the columns prune and report
    read, public.pipelines a view over a table (filtered by `pipelines_filter`)."""
    plant(
        ledger_db,
        f"""
        create table public.pipelines_built (
            id bigint, pipeline_name text, status text, created_at timestamptz,
            completed_at timestamptz, records_processed bigint, error_message text,
            _load_watermark xid8);
        insert into public.pipelines_built values
            (1, 'nightly', 'completed', '{T0}', '{T0}', 1, null, '1');
        create view public.pipelines as
            select * from public.pipelines_built where {pipelines_filter};
        create table public.pipeline_stages (
            id bigint, pipeline_id bigint, _load_watermark xid8);
        create table marts.fct_pipeline_runs (
            pipeline_id bigint, pipeline_name text, run_key text, status text,
            last_event_at timestamptz, stage_count int, is_stale boolean,
            _load_watermark xid8);
        create table marts.pipeline_health_built (
            pipeline_name text, owner text, health text, last_run_status text,
            last_run_at timestamptz, last_success_at timestamptz,
            consecutive_failures int, success_rate_7d float8, success_rate_30d float8,
            duration_p95_seconds_30d float8, running_runs int, stale_runs int,
            stale_after_minutes int);
        insert into marts.pipeline_health_built (pipeline_name, health)
            values ('nightly', 'healthy');
        create view marts.pipeline_health as select * from marts.pipeline_health_built;
        create table marts.fct_stage_runs (
            pipeline_name text, stage_name text, status text, duration_seconds float8,
            retries int, run_date date);
        create table marts.failure_reasons (
            pipeline_name text, stage_name text, failures int, last_seen_at timestamptz,
            error_signature text);
        """,
    )


def test_init_runs_no_function_the_transformer_planted(ledger_db: Ledgerdb) -> None:
    # The loader passes an int4 to pg_advisory_xact_lock (built-in: bigint) and a name
    # to format (built-in: variadic "any"): exact matches in public would win.
    plant(
        ledger_db,
        f"""
        create function public.pg_advisory_xact_lock(integer) returns void
        language plpgsql as $body$
        {
            evil_body(ledger_db, "pg_advisory_xact_lock", "null").replace(
                "return null;", "perform pg_catalog.pg_advisory_xact_lock($1::bigint); return;"
            )
        }
        $body$;
        create function public.format(text, name) returns text
        language plpgsql as $body$
        {evil_body(ledger_db, "format", "pg_catalog.format($1, $2)")}
        $body$;
        """,
    )
    init(ledger_db.admin)  # the next `ledger init`, e.g. after an upgrade
    assert_confined(ledger_db)


def test_an_ingest_runs_no_function_the_transformer_planted(ledger_db: Ledgerdb) -> None:
    # A rejection message joins text and a bigint: `format(text, bigint)` or an operator
    # `||(text, bigint)` in public would be called instead of the built-ins.
    plant(
        ledger_db,
        f"""
        create function public.format(text, bigint) returns text
        language plpgsql as $body$
        {evil_body(ledger_db, "format", "pg_catalog.format($1, $2)")}
        $body$;
        create function public.attack_concat(text, bigint) returns text
        language plpgsql as $body$
        {evil_body(ledger_db, "||", "pg_catalog.textcat($1, $2::text)")}
        $body$;
        create operator public.|| (
            leftarg = text, rightarg = bigint, function = public.attack_concat
        );
        """,
    )
    with Ledger(ledger_db.logins[LOADER]) as ledger, pytest.raises(RejectedEventsError):
        ledger.emit({"pipeline_id": 999, "status": "running", "event_time": T0})
    assert_confined(ledger_db)


def test_report_runs_no_function_the_transformer_planted(
    ledger_db: Ledgerdb, capsys: pytest.CaptureFixture[str]
) -> None:
    build_stand_ins(ledger_db)
    plant(
        ledger_db,
        f"""
        create function public.array_position(text[], text) returns integer
        language plpgsql as $body$
        {evil_body(ledger_db, "array_position", "pg_catalog.array_position($1, $2)")}
        $body$;
        """,
    )
    with connect(ledger_db.admin) as conn:
        print_report(conn)
    assert "nightly" in capsys.readouterr().out
    assert_confined(ledger_db)


def evil_filter(ledger_db: Ledgerdb, door: str) -> str:
    """A boolean function for a view's where clause; returns its call."""
    plant(
        ledger_db,
        f"""
        create function public.evil_filter() returns boolean
        language plpgsql as $body$
        {evil_body(ledger_db, door, "true")}
        $body$;
        """,
    )
    return "public.evil_filter()"


def test_a_view_replacing_pipelines_runs_with_no_more_than_the_transformers_rights_in_prune(
    ledger_db: Ledgerdb,
) -> None:
    build_stand_ins(ledger_db, pipelines_filter=evil_filter(ledger_db, "pipelines view"))
    with connect(ledger_db.admin, autocommit=True) as conn:
        prune(conn, before=T0.replace(year=2027))
    assert_confined(ledger_db, allowed=(TRANSFORMER,))


def test_a_view_replacing_what_report_reads_runs_with_no_more_than_the_transformers_rights(
    ledger_db: Ledgerdb,
) -> None:
    build_stand_ins(ledger_db, pipelines_filter=evil_filter(ledger_db, "pipelines view"))
    plant(
        ledger_db,
        "create or replace view marts.pipeline_health as"
        " select * from marts.pipeline_health_built where public.evil_filter()",
    )
    with connect(ledger_db.admin) as conn:
        print_report(conn)
    assert_confined(ledger_db, allowed=(TRANSFORMER,))


def test_init_revokes_publics_create_on_public_of_a_database_from_before_15(
    cluster: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    admin = recreate_database(cluster, f"upgraded_{uuid.uuid4().hex[:8]}")
    reader = dataclasses.replace(admin, user=f"reader_{admin.dbname}", password="pw-reader")
    try:
        with connect(admin, autocommit=True) as conn:
            # What a database created before PostgreSQL 15 keeps through an upgrade.
            conn.execute("grant create on schema public to public")
        init(admin)
        assert "revoked CREATE on schema public from PUBLIC" in caplog.text  # init says so
        with connect(admin, autocommit=True) as conn:
            create_login(conn, reader.user, READER, password=reader.password)
        with (
            connect(reader, autocommit=True) as conn,
            pytest.raises(psycopg.errors.InsufficientPrivilege),
        ):
            # An ordered-set aggregate dbt's marts call would resolve to, given the chance.
            conn.execute(
                "create function public.percentile_cont_final(internal, float8, numeric)"
                " returns float8 language sql as 'select 1.0::float8'"
            )
    finally:
        drop_database(cluster, admin.dbname)
        with connect(cluster, autocommit=True) as conn:
            conn.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(reader.user)))


def test_report_escapes_control_characters_in_names(
    ledger_db: Ledgerdb, capsys: pytest.CaptureFixture[str]
) -> None:
    build_stand_ins(ledger_db)
    plant(
        ledger_db,
        "update public.pipelines_built"
        " set pipeline_name = E'red\\x1b[31m\\nforged: all runs completed'",
    )
    with connect(ledger_db.admin) as conn:
        print_report(conn)
    out = capsys.readouterr().out
    assert "\x1b" not in out
    assert "red\\x1b[31m\\nforged: all runs completed" in out
    assert not any(line.startswith("forged") for line in out.splitlines())


# ---- `ledger serve` logged in as a ledger_loader login --------------------------------------

SERVE_LIMIT = 64 * 1024
"""The collector's LEDGER_MAX_LINE_BYTES here: a body or a key past it is answered 413."""
SQL_NAME = "nightly'); drop table raw.run_events; --"
SQL_STAGE = 'load"; grant ledger_transformer to public; --'
SQL_KEY = "r1'; select pg_sleep(30); --"
HUGE_KEY = "k" * (SERVE_LIMIT - 1024)


@contextmanager
def serving(settings: Settings, log: Path) -> Iterator[str]:
    """Run `ledger serve` logged in with `settings`, on a free port; yield its base URL."""
    with ledger_serve(settings, log, max_line_bytes=SERVE_LIMIT) as url:
        yield url


def beyond_the_events(admin: Settings) -> list[dict[str, Any]]:
    """What a loader login must never change: roles and memberships, schemas, every relation
    (owner, privileges; and the rows of each table outside raw) and the functions in public."""
    with connect(admin, autocommit=True) as conn:
        roles = query(
            conn,
            "select rolname::text, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls,"
            " array(select pg_catalog.pg_get_userbyid(roleid)::text from pg_auth_members"
            "  where member = pg_roles.oid order by 1) as member_of"
            " from pg_catalog.pg_roles order by 1",
        )
        schemas = query(
            conn,
            "select nspname::text, pg_catalog.pg_get_userbyid(nspowner)::text as owner,"
            " nspacl::text from pg_catalog.pg_namespace"
            " where nspname !~ '^pg_(toast_)?temp_' order by 1",
        )
        relations = query(
            conn,
            "select nspname::text as schema, relname::text as name, relkind::text as kind,"
            " pg_catalog.pg_get_userbyid(relowner)::text as owner, relacl::text as acl"
            " from pg_catalog.pg_class"
            " join pg_catalog.pg_namespace on pg_namespace.oid = relnamespace"
            " where nspname in ('raw', 'staging', 'public', 'marts') order by 1, 2",
        )
        for relation in relations:
            if relation["kind"] == "r" and relation["schema"] != "raw":
                relation["rows"] = conn.execute(
                    sql.SQL(
                        "select count(*), md5(string_agg(t::text, ',' order by t::text))"
                        " from {}.{} as t"
                    ).format(sql.Identifier(relation["schema"]), sql.Identifier(relation["name"]))
                ).fetchone()
        functions = query(
            conn,
            "select oid::regprocedure::text, pg_catalog.pg_get_userbyid(proowner)::text, prosecdef"
            " from pg_catalog.pg_proc where pronamespace = 'public'::regnamespace order by 1",
        )
    return [*roles, *schemas, *relations, *functions]


def raw_post(url: str, path: str, body: bytes) -> int:
    """POST `path` exactly as given (no client normalises its dots); return the status."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("POST", path, body, {"Content-Type": "application/json"})
        return connection.getresponse().status
    finally:
        connection.close()


def test_the_collector_as_a_loader_login_stores_events_and_changes_nothing_else(
    ledger_db: Ledgerdb, tmp_path: Path
) -> None:
    loader = ledger_db.logins[LOADER]
    build_stand_ins(ledger_db)  # what dbt built, in public and marts
    # What the writer would call if `public` were on the collector's search path: the
    # reason for an unknown pipeline_id formats a bigint.
    plant(
        ledger_db,
        f"""
        create function public.format(text, bigint) returns text
        language plpgsql as $body$
        {evil_body(ledger_db, "format", "pg_catalog.format($1, $2)")}
        $body$;
        """,
    )
    before = beyond_the_events(ledger_db.admin)
    run_id = str(uuid.uuid4())
    with serving(loader, tmp_path / "serve.log") as url, requests.Session() as http_session:
        events, lineage = f"{url}/api/v1/events", f"{url}/api/v1/lineage"
        # A job's events whose names and values look like SQL, COPY data and other schemas.
        job = [
            {"run_key": SQL_KEY, "pipeline_name": SQL_NAME, "status": "running",
             "event_time": "2026-03-01T02:00:00Z"},
            {"run_key": SQL_KEY, "stage_name": SQL_STAGE, "status": "failed",
             "event_time": "2026-03-01T02:01:00Z",
             "error_message": "$$; alter role current_user superuser; $$\\.\n\t\\N",
             "attributes": {"schema": "marts", "table": "marts.pipeline_health",
                            "sql": "delete from public.pipelines_built", HUGE_KEY: 1}},
            {"run_key": SQL_KEY, "status": "failed", "event_time": "2026-03-01T02:02:00Z"},
        ]  # fmt: skip
        answer = http_session.post(events, json=job)
        assert (answer.status_code, answer.json()["stored"]) == (200, 3), answer.text
        # OpenLineage: a RunEvent whose job and datasets name other schemas, a DatasetEvent.
        openlineage: dict[str, Any] = {
            "eventTime": "2026-03-01T02:03:00Z", "producer": "tests",
            "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json",
        }  # fmt: skip
        for event_type in ("START", "COMPLETE"):
            run_event = {
                **openlineage, "eventType": event_type, "run": {"runId": run_id},
                "job": {"namespace": "postgres://ledger/marts",
                        "name": "public.pipelines; drop view marts.pipeline_health"},
                "inputs": [{"namespace": "postgres://ledger", "name": "marts.pipeline_health"}],
            }  # fmt: skip
            assert http_session.post(lineage, json=run_event).status_code == 200
        dataset = {
            **openlineage,
            "dataset": {
                "namespace": "postgres://ledger",
                "name": "raw.runs'; truncate raw.runs; --",
                "facets": {HUGE_KEY: {"search_path": "public"}},
            },
        }
        assert http_session.post(lineage, json=dataset).status_code == 200
        # Bad and hostile bodies: refused with a reason, nothing stored.
        over = http_session.post(lineage, json={**dataset, "x" * SERVE_LIMIT: 1})
        assert over.status_code == 413
        unknown_key = http_session.post(events, json={**job[2], HUGE_KEY: "x"})
        assert unknown_key.status_code == 400
        assert len(unknown_key.content) < 4096, "a reason never echoes a huge key"
        another_run = {
            "pipeline_id": 999,
            "status": "running",
            "event_time": "2026-03-01T02:04:00Z",
        }
        assert http_session.post(events, json=another_run).status_code == 400
        # Paths and query strings that try to name another schema or table.
        body = json.dumps(job[0]).encode()
        for path in ("/api/v1/events/../../marts", "/api/v1/%2e%2e/marts/pipeline_health",
                     "/api/v1/marts.pipeline_health", "/../raw/runs"):  # fmt: skip
            assert raw_post(url, path, body) == 404, path
        ignored = "/api/v1/events?schema=marts&options=-c%20search_path%3Dpublic"
        assert raw_post(url, ignored, body) == 200  # the query string is ignored
        with connect(ledger_db.admin) as conn:
            sessions = conn.execute(
                "select distinct usename::text from pg_catalog.pg_stat_activity"
                " where datname = current_database() and pid <> pg_backend_pid()"
                " and backend_type = 'client backend'"
            ).fetchall()
    assert sessions == [(loader.user,)], "the collector logs in as the loader login only"
    assert_confined(ledger_db)
    assert beyond_the_events(ledger_db.admin) == before
    assert list(loader.spool_dir.rglob("*.jsonl")) == [], "nothing was refused and spooled"
    with connect(ledger_db.admin) as conn:
        runs = query(conn, "select run_key, pipeline_name from raw.runs order by pipeline_id")
        stages = [row[0] for row in conn.execute("select stage_name from raw.stages")]
        stored = conn.execute("select count(*) from raw.run_events").fetchone()
        others = query(conn, "select event_kind, payload from raw.openlineage_other_events")
        quarantined = conn.execute("select count(*) from raw.quarantined_events").fetchone()
    assert runs[0] == {"run_key": SQL_KEY, "pipeline_name": SQL_NAME}
    assert len(runs) == 2
    assert stages == [SQL_STAGE]
    assert stored == (6,)  # the job's 3, 2 RunEvents, the post with a query string
    assert [other["event_kind"] for other in others] == ["DatasetEvent"]
    assert others[0]["payload"]["dataset"]["facets"] == {HUGE_KEY: {"search_path": "public"}}
    assert quarantined == (2,)
