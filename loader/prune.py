"""Retention: delete the raw events of runs that ended long ago, once dbt has them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from loader.connection import Connection
from loader.errors import ConfigurationError
from loader.sql_files import read_sql

_BUILT_TABLES = ("public.pipelines", "public.pipeline_stages", "marts.fct_pipeline_runs")


@dataclass(frozen=True)
class PruneResult:
    """What a prune did: runs closed, raw events deleted, ended runs kept (not yet built)."""

    runs: int
    events: int
    kept: int


def prune(conn: Connection, *, before: datetime) -> PruneResult:
    """Delete the raw events of runs that ended before `before` and that dbt has built.

    The runs stay registered, marked pruned: a late event for one is quarantined. The
    derived tables keep their rows on incremental builds; a `--full-refresh` rebuilds
    only what raw still holds.
    """
    if before.tzinfo is None:
        raise ConfigurationError("prune --before: give a date or a timestamp with an offset")
    for table in _BUILT_TABLES:
        exists = conn.execute("select to_regclass(%s) is not null", [table]).fetchone()
        if not (exists and exists[0]):
            raise ConfigurationError(f"prune: {table} does not exist yet; run dbt first")
    with conn.transaction():
        row = conn.execute(read_sql("prune"), {"before": before}).fetchone()
    assert row is not None
    return PruneResult(runs=row[0], events=row[1], kept=row[2])
