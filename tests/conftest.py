"""Fixtures: a real PostgreSQL for every test module, and dbt run against it."""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable, Iterator

import pytest
from psycopg import sql
from support import dbt

from loader import Ledger, Settings
from loader.connection import Connection, connect, resolve
from loader.schema import create_raw_schema

RAW_TABLES = ("raw.run_events", "raw.stages", "raw.runs", "raw.quarantined_events")

RunDbt = Callable[..., None]


@pytest.fixture(scope="session")
def server() -> Settings:
    """The server under test: the one DATABASE_HOST names, else the embedded one."""
    return resolve(Settings.from_env())


@pytest.fixture(scope="module")
def database(server: Settings, request: pytest.FixtureRequest) -> Iterator[Settings]:
    """A database of its own for this test module, with the raw schema; dropped after."""
    name = "test_" + re.sub(r"\W", "_", request.module.__name__.rsplit(".", 1)[-1])
    maintenance = dataclasses.replace(server, dbname="postgres")
    identifier = sql.Identifier(name)
    with connect(maintenance, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(identifier))
        conn.execute(sql.SQL("create database {}").format(identifier))
    settings = dataclasses.replace(server, dbname=name)
    with connect(settings, autocommit=True) as conn:
        create_raw_schema(conn)
    yield settings
    with connect(maintenance, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(identifier))


@pytest.fixture
def db(database: Settings) -> Iterator[Connection]:
    """An autocommit connection to a raw schema emptied for this test."""
    with connect(database, autocommit=True) as conn:
        conn.execute(f"truncate {', '.join(RAW_TABLES)} restart identity")
        for schema in ("staging", "public"):
            conn.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(schema)))
        conn.execute("create schema public")
        yield conn


@pytest.fixture
def ledger(database: Settings, db: Connection) -> Iterator[Ledger]:
    """The API's entry point on this module's (emptied) database."""
    with Ledger(database) as handle:
        yield handle


@pytest.fixture(scope="module")
def run_dbt(database: Settings, tmp_path_factory: pytest.TempPathFactory) -> RunDbt:
    """Run a dbt command (through dbtRunner) against this module's database."""
    target = tmp_path_factory.mktemp("dbt")
    return functools.partial(dbt, database, target)
