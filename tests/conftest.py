"""Fixtures: a real PostgreSQL for every test module, and dbt run against it."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from loader import Ledger, Settings, embedded
from loader.connection import Connection, connect, drop_database, recreate_database, resolve
from loader.roles import create_roles
from loader.schema import create_raw_schema
from tests.support import clear_built, dbt

RunDbt = Callable[..., None]


@pytest.fixture(scope="session")
def server() -> Settings:
    """The server under test: the one DATABASE_HOST names, else the embedded one."""
    return resolve(Settings.from_env())


@pytest.fixture(scope="module")
def database(server: Settings, request: pytest.FixtureRequest) -> Iterator[Settings]:
    """A database of its own for this test module, with the raw schema and the roles.

    The roles matter to dbt: its grants on the marts name ledger_reader.
    """
    name = "test_" + re.sub(r"\W", "_", request.module.__name__.rsplit(".", 1)[-1])
    settings = recreate_database(server, name)
    with connect(settings, autocommit=True) as conn:
        create_raw_schema(conn)
        create_roles(conn)
    yield settings
    drop_database(server, name)


@pytest.fixture
def db(database: Settings) -> Iterator[Connection]:
    """An autocommit connection to a raw schema emptied for this test, nothing built yet."""
    with connect(database, autocommit=True) as conn:
        clear_built(conn)
        yield conn


@pytest.fixture
def ledger(database: Settings, db: Connection) -> Iterator[Ledger]:
    """The API's entry point on this module's (emptied) database."""
    with Ledger(database) as handle:
        yield handle


@pytest.fixture(scope="module")
def server_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """This module's own embedded server (its data folder), for tests that stop and start it;
    `tests.support.own_server.fresh_database` makes databases on it."""
    data_dir = tmp_path_factory.mktemp("own-server") / "data"
    embedded.start(data_dir)
    yield data_dir
    embedded.stop(data_dir)


@pytest.fixture(scope="module")
def dbt_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where this module's dbt runs write target/ (manifest, catalog) and logs/."""
    return tmp_path_factory.mktemp("dbt")


@pytest.fixture(scope="module")
def run_dbt(database: Settings, dbt_dir: Path) -> RunDbt:
    """Run a dbt command (through dbtRunner) against this module's database, seeded."""
    run = functools.partial(dbt, database, dbt_dir)
    run("seed")
    return run
