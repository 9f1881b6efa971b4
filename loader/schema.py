"""Create the raw schema the loader writes to, and read what dbt built without trusting it.

`create_raw_schema` runs online: it checks the catalog and runs only the statements
whose object is missing, under a lock timeout, so that an `init` on a ledger in use never
queues an ACCESS EXCLUSIVE lock behind the jobs' transactions.

`read_built` reads dbt-built relations (owned by whoever ran dbt, usually
ledger_transformer, which may replace a table by a view calling its own functions) so
that whatever they run has its owner's rights, never the caller's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any

from psycopg import errors, sql
from psycopg.types.json import Jsonb

from loader.connection import Connection
from loader.errors import ConfigurationError, TransientError
from loader.sql_files import read_sql

# Any constant works; it only has to be the same in every process that runs init.
INIT_LOCK_KEY = 0x1ED6E2
# How long init waits for a table lock when something is missing. A ledger in use has
# jobs inside transactions on raw; past this, init gives up instead of stalling them.
INIT_LOCK_TIMEOUT = 5.0


@dataclass(frozen=True)
class _Step:
    """One statement of create_raw_schema.sql and how to tell that its object exists."""

    statement: str
    exists_sql: str
    exists_params: tuple[str, ...]


# Each statement of create_raw_schema.sql must have one of these forms, so that init can
# check the catalog first: `if not exists` alone still takes the table's lock.
_FORMS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"create schema if not exists (?P<schema>\w+)"),
        "select pg_catalog.to_regnamespace(%s::text) is not null",
    ),
    (
        re.compile(r"create table if not exists (?P<table>\w+\.\w+)"),
        "select pg_catalog.to_regclass(%s::text) is not null",
    ),
    (
        re.compile(r"create (?:unique )?index if not exists (?P<index>\w+)\s+on (?P<schema>\w+)\."),
        "select pg_catalog.to_regclass(pg_catalog.format('%%I.%%I', %s::text, %s::text))"
        " is not null",
    ),
    (
        # Always run, so that a changed definition lands: its ACCESS EXCLUSIVE lock is
        # on the view alone, not on the tables the jobs write to.
        re.compile(r"create or replace view (?P<view>\w+\.\w+)"),
        "select false and %s::text is not null",
    ),
    (
        # Always run too: replacing a function locks only its own catalog row.
        re.compile(r"create or replace function (?P<function>\w+\.\w+)"),
        "select false and %s::text is not null",
    ),
    (
        # "Exists" here means nothing is left to drop.
        re.compile(
            r"alter table (?P<table>\w+\.\w+) drop constraint if exists (?P<constraint>\w+)"
        ),
        "select not exists (select from pg_catalog.pg_constraint"
        " where conrelid = pg_catalog.to_regclass(%s::text) and conname = %s::text)",
    ),
    (
        re.compile(r"alter table (?P<table>\w+\.\w+) add column if not exists (?P<column>\w+)"),
        "select exists (select from pg_catalog.pg_attribute"
        " where attrelid = pg_catalog.to_regclass(%s::text) and attname = %s::text"
        " and not attisdropped)",
    ),
)


@cache
def _steps() -> tuple[_Step, ...]:
    text = re.sub(r"--[^\n]*", "", read_sql("create_raw_schema"))
    steps = []
    # A semicolon inside a function's $$-quoted body does not end its statement.
    statements = re.findall(r"(?:\$\$.*?\$\$|[^;$])+", text, flags=re.S)
    for statement in (part.strip() for part in statements):
        if not statement:
            continue
        for pattern, exists_sql in _FORMS:
            match = pattern.match(statement)
            if match:
                names = match.groupdict()
                if "index" in names:
                    params: tuple[str, ...] = (names["schema"], names["index"])
                else:
                    params = tuple(value for value in names.values())
                steps.append(_Step(statement, exists_sql, params))
                break
        else:
            raise ConfigurationError(
                "create_raw_schema.sql: init checks the catalog before each statement and"
                " knows `create schema|table|index if not exists`, `create or replace"
                " view|function`, `alter table ... add column if not exists` and `alter"
                f" table ... drop constraint if exists`, not: {statement[:80]!r}"
            )
    return tuple(steps)


def create_raw_schema(conn: Connection, *, lock_timeout: float = INIT_LOCK_TIMEOUT) -> None:
    """Create (idempotently) what is missing of the raw schema; safe from several processes.

    Nothing is locked when nothing is missing. Raise ConfigurationError on a database that
    is not UTF8, and TransientError when a table lock is not had within `lock_timeout`.
    """
    encoding = conn.execute("select pg_catalog.current_setting('server_encoding')").fetchone()
    if encoding and encoding[0] != "UTF8":
        # Names, error messages and attributes are any Unicode text: one character the
        # encoding lacks would abort a whole batch.
        raise ConfigurationError(
            f"database {conn.info.dbname!r} uses encoding {encoding[0]}; the ledger needs"
            " UTF8: create it with `create database ... encoding 'UTF8' template template0`"
        )
    with conn.transaction():
        conn.execute("select pg_catalog.pg_advisory_xact_lock(%s::bigint)", [INIT_LOCK_KEY])
        # Set once the advisory lock is held: waiting for another init is fine.
        _set_lock_timeout(conn, lock_timeout)
        for step in _steps():
            row = conn.execute(step.exists_sql, list(step.exists_params)).fetchone()
            if row and row[0]:
                continue
            try:
                with conn.transaction():
                    conn.execute(step.statement)
            except errors.LockNotAvailable as error:
                raise TransientError(
                    f"init: the ledger is busy, {step.statement.splitlines()[0]!r} did not get"
                    f" its lock within {lock_timeout:g} s (jobs or readers hold raw's tables);"
                    " run init again when they are done"
                ) from error


def _set_lock_timeout(conn: Connection, seconds: float) -> None:
    conn.execute(
        "select pg_catalog.set_config('lock_timeout', %s, true)", [f"{round(seconds * 1000)}ms"]
    )


def raw_schema_exists(conn: Connection) -> bool:
    """Tell whether the raw schema's newest object is there (so the latest init has run).

    The newest object is the last statement of create_raw_schema.sql.
    """
    row = conn.execute(
        "select pg_catalog.to_regprocedure('raw.lock_open_run(bigint, integer)') is not null"
    ).fetchone()
    return bool(row and row[0])


# Runs `query` with its owner's rights and no way out: inside a SECURITY DEFINER function
# PostgreSQL refuses SET ROLE and RESET ROLE, which a plain `SET ROLE` does not stop.
_CREATE_READER = """
create function pg_temp.ledger_read_built(query text, args jsonb)
returns setof text
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
begin
    return query execute
        'select pg_catalog.row_to_json(built)::text from (' || query || ') as built'
        using args;
end
$$
"""

_OWNERS = """
select relations.name, pg_catalog.pg_get_userbyid(class.relowner),
    class.relowner = (select oid from pg_catalog.pg_roles where rolname = current_user)
    or owner.rolsuper
from pg_catalog.unnest(%s::text[]) as relations (name)
left join pg_catalog.pg_class as class
    on class.oid = pg_catalog.to_regclass(relations.name)
left join pg_catalog.pg_roles as owner on class.relowner = owner.oid
"""


def read_built(
    conn: Connection,
    query: str,
    args: Mapping[str, Any],
    *,
    relations: Sequence[str],
) -> list[dict[str, Any]]:
    """Run a read-only `query` over dbt-built `relations` as their owner; return its rows.

    The query sees `args` as the jsonb `$1` and runs in a savepoint that is rolled back:
    whatever the relations' code changes (settings, objects) is undone, and the function
    that switches roles is never visible to another session. A relation owned by the
    caller or by a superuser is read with the caller's rights (its owner has them
    already). Values come back as JSON: numbers as Decimal or int, timestamps as text.
    Raise ConfigurationError when a relation is missing, when they have several owners,
    or when the caller may not act as their owner.
    """
    foreign: set[str] = set()
    for name, owner, trusted in conn.execute(_OWNERS, [list(relations)]).fetchall():
        if owner is None:
            raise ConfigurationError(f"{name} does not exist yet; run dbt first")
        if not trusted:
            foreign.add(owner)
    if len(foreign) > 1:
        raise ConfigurationError(
            f"{', '.join(relations)} belong to {', '.join(sorted(foreign))}: they are read"
            " with their owner's rights, so one role must own them all (see"
            " docs/access-control.md, Logins)"
        )
    user = conn.info.user
    with conn.transaction(force_rollback=True):
        conn.execute(_CREATE_READER)
        if foreign:
            owner = foreign.pop()
            try:
                with conn.transaction():
                    conn.execute(
                        sql.SQL("alter function pg_temp.ledger_read_built(text, jsonb) owner to {}")
                        .format(sql.Identifier(owner))
                    )  # fmt: skip
            except errors.InsufficientPrivilege as error:
                raise ConfigurationError(
                    f"{', '.join(relations)} belong to {owner}, and {user} reads them only"
                    f" with {owner}'s rights, which it may not take: an administrator can run"
                    f" `grant {owner} to {user}` (docs/access-control.md)"
                ) from error
        try:
            rows = conn.execute(
                "select pg_temp.ledger_read_built(%s, %s)", [query, Jsonb(dict(args))]
            ).fetchall()
        except errors.InsufficientPrivilege as error:
            raise ConfigurationError(
                f"reading {', '.join(relations)} with their owner's rights: {error}".strip()
            ) from error
    return [json.loads(row[0], parse_float=Decimal) for row in rows]
