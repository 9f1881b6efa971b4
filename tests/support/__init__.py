"""Helpers shared by the test modules."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql

from loader.connection import Connection
from loader.settings import Settings

PROJECT_DIR = Path(__file__).resolve().parents[2]
# Builds pipelines and pipeline_stages (and the staging views they read), not the marts:
# for tests of the contract's tables, which need neither the marts nor their seed.
BUILD_LEDGER_TABLES = ("run", "--select", "+pipelines")


RAW_TABLES = (
    "raw.run_events",
    "raw.stages",
    "raw.runs",
    "raw.quarantined_events",
    "raw.parked_events",
)
# staging keeps the catalog seed (seeded once per module) and views over raw; its
# incremental intermediate tables (int_*) are built from raw like public and marts.
BUILT_SCHEMAS = ("public", "marts")
BUILT_STAGING_TABLES = """
select format('drop table %I.%I cascade', schemaname, tablename)
from pg_tables
where schemaname = 'staging' and tablename like 'int\\_%'
"""


def clear_built(conn: Connection) -> None:
    """Empty raw (ids restart at 1) and drop everything dbt built from it."""
    conn.execute(f"truncate {', '.join(RAW_TABLES)} restart identity")
    for schema in BUILT_SCHEMAS:
        identifier = sql.Identifier(schema)
        conn.execute(sql.SQL("drop schema if exists {} cascade").format(identifier))
        conn.execute(sql.SQL("create schema {}").format(identifier))
    for (drop,) in conn.execute(BUILT_STAGING_TABLES).fetchall():
        conn.execute(drop)


def query(conn: Connection, statement: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
    """Return the rows of a query as dicts (column name → value)."""
    cursor = conn.execute(statement, list(params))  # type: ignore[arg-type]
    names = [column.name for column in cursor.description or ()]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


STORED_EVENTS_SQL = """
select events.event_id, runs.run_key, runs.pipeline_name, stages.stage_name, events.status,
    events.event_time, events.records_processed, events.error_message, events.attempt,
    events.run_attempt, events.attributes
from raw.run_events as events
inner join raw.runs on runs.pipeline_id = events.pipeline_id
left join raw.stages
    on stages.stage_id = events.stage_id and stages.pipeline_id = events.pipeline_id
order by events.event_id
"""


def stored_events(conn: Connection) -> list[dict[str, Any]]:
    """Every stored event with its run's key and name and its stage's name, by event_id."""
    return query(conn, STORED_EVENTS_SQL)


def quarantined_lines(conn: Connection) -> list[dict[str, Any]]:
    """Every quarantined line (origin, line_number, reason, raw_line), by line number."""
    return query(
        conn,
        "select origin, line_number, reason, raw_line from raw.quarantined_events"
        " order by line_number",
    )


def jsonl(events: Iterable[Mapping[str, Any]]) -> bytes:
    """Return events as a JSON-lines file's bytes."""
    return b"".join(json.dumps(event).encode() + b"\n" for event in events)


def dbt(settings: Settings, target: Path, *args: str) -> None:
    """Run a dbt command through dbtRunner against `settings`' database; fail on error."""
    from dbt.cli.main import dbtRunner  # noqa: PLC0415  # slow import, only where dbt runs

    with pytest.MonkeyPatch.context() as patch:
        for name, value in settings.as_env().items():
            patch.setenv(name, value)
        result = dbtRunner().invoke(
            [
                *args,
                "--project-dir", str(PROJECT_DIR),
                "--profiles-dir", str(PROJECT_DIR),
                "--target-path", str(target / "target"),
                "--log-path", str(target / "logs"),
                "--log-level-file", "none",
                "--quiet",
            ]
        )  # fmt: skip
    if not result.success:
        raise AssertionError(f"dbt {' '.join(args)} failed: {result.exception or result.result}")
