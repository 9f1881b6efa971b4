"""Connections to the ledger's database, embedded or not."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from loader import embedded
from loader.errors import TransientError
from loader.settings import Settings

Connection = psycopg.Connection[TupleRow]


def resolve(settings: Settings) -> Settings:
    """Return settings that name a reachable server, starting the embedded one if needed.

    For the embedded server the database is created when missing; a real server's database
    must exist already.
    """
    if not settings.is_embedded:
        return settings
    address = embedded.start(settings.embedded_dir)
    resolved = dataclasses.replace(settings, host=str(address.socket_dir), port=address.port)
    _create_database_if_missing(resolved)
    return resolved


def _create_database_if_missing(settings: Settings) -> None:
    maintenance = dataclasses.replace(settings, dbname="postgres")
    with open_connection(maintenance, autocommit=True) as conn:
        exists = conn.execute(
            "select 1 from pg_database where datname = %s", [settings.dbname]
        ).fetchone()
        if exists is None:
            # Another process may create it between our check and our create; the
            # catalog's unique index reports a create racing ours as a UniqueViolation.
            with suppress(psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
                conn.execute(sql.SQL("create database {}").format(sql.Identifier(settings.dbname)))


def recreate_database(server: Settings, name: str) -> Settings:
    """Drop database `name` on the server if it exists, create it empty; return its settings.

    For throwaway databases (tests, benchmarks): `with (force)` ends other sessions on it.
    """
    drop_database(server, name)
    with connect(dataclasses.replace(server, dbname="postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    return dataclasses.replace(server, dbname=name)


def drop_database(server: Settings, name: str) -> None:
    """Drop database `name` on the server if it exists, ending its sessions."""
    with connect(dataclasses.replace(server, dbname="postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
        )


@contextmanager
def database_errors(what: str) -> Iterator[None]:
    """Raise the database's failures inside the block as TransientError, saying `what` failed.

    The one place that decides what a retry or the spool can fix: the server unreachable,
    stopped, crashed or timing out (psycopg's OperationalError). Anything else is a bug or
    bad input and propagates as it is.
    """
    try:
        yield
    except psycopg.OperationalError as error:
        raise TransientError(f"{what}: {error}".strip()) from error


def open_connection(settings: Settings, *, autocommit: bool = False) -> Connection:
    """Open a connection to the resolved settings' database; the caller closes it."""
    where = f"cannot connect to PostgreSQL at {settings.host}:{settings.port}/{settings.dbname}"
    with database_errors(where):
        return psycopg.connect(
            host=settings.host,
            port=settings.port,
            dbname=settings.dbname,
            user=settings.user,
            password=settings.password or None,
            connect_timeout=max(1, round(settings.connect_timeout)),
            # Bounds how long a job can wait on the ledger once connected. The search
            # path holds no schema another role may create in: an unqualified function
            # or operator is always the built-in, never one planted in `public` that
            # would run with this login's rights (pg_temp last: temporary tables only).
            options=(
                f"-c statement_timeout={round(settings.statement_timeout * 1000)}"
                " -c search_path=pg_catalog,pg_temp"
            ),
            autocommit=autocommit,
            application_name="pipeline-ledger",
        )


@contextmanager
def connect(settings: Settings, *, autocommit: bool = False) -> Iterator[Connection]:
    """Open a connection to the resolved settings' database, closed on exit."""
    conn = open_connection(settings, autocommit=autocommit)
    with conn:
        yield conn
