"""Retention: delete the raw events of runs that ended long ago, once dbt has them.

What dbt built belongs to its owner (ledger_transformer), who may replace a table by a
view: prune reads it only with that owner's rights (`schema.read_built`) and deletes
with its own. A batch loading a late event for a run being pruned either commits before
prune decides (and the run is kept) or waits and is quarantined: prune locks the runs
(`locks.RUN_LOCK_SPACE`, exclusively) before it reads their events, as the writer locks
them (shared) before it writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from loader.connection import Connection
from loader.errors import ConfigurationError
from loader.locks import RUN_LOCK_SPACE
from loader.schema import read_built
from loader.sql_files import read_sql

_BUILT_TABLES = ("public.pipelines", "public.pipeline_stages", "marts.fct_pipeline_runs")
# Runs locked, decided and closed per transaction: each run's lock takes a slot of the
# server's lock table (max_locks_per_transaction), and jobs wait for a chunk, not a prune.
CHUNK_RUNS = 500


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
        exists = conn.execute("select pg_catalog.to_regclass(%s) is not null", [table]).fetchone()
        if not (exists and exists[0]):
            raise ConfigurationError(f"prune: {table} does not exist yet; run dbt first")
    cutoff = {"before": before.isoformat()}
    ended = read_built(conn, read_sql("prune/ended_runs"), cutoff, relations=_BUILT_TABLES)
    candidates = sorted(row["pipeline_id"] for row in ended)
    runs = events = kept = 0
    for start in range(0, len(candidates), CHUNK_RUNS):
        closed = _prune_chunk(conn, candidates[start : start + CHUNK_RUNS], before)
        runs, events, kept = runs + closed[0], events + closed[1], kept + closed[2]
    return PruneResult(runs=runs, events=events, kept=kept)


def _prune_chunk(conn: Connection, candidates: list[int], before: datetime) -> tuple[int, ...]:
    with conn.transaction():
        locked = [
            row[0]
            for row in conn.execute(
                read_sql("prune/lock_runs"),
                {"candidates": candidates, "run_lock_space": RUN_LOCK_SPACE},
            )
        ]
        # READ COMMITTED: this statement's snapshot is taken after the locks are held.
        verdicts = read_built(
            conn,
            read_sql("prune/final_runs"),
            {"before": before.isoformat(), "runs": locked},
            relations=_BUILT_TABLES,
        )
        final = [row["pipeline_id"] for row in verdicts if row["is_final"]]
        row = conn.execute(
            read_sql("prune/close_runs"), {"final": final, "before": before}
        ).fetchone()
    assert row is not None
    return row[0], row[1], len(verdicts) - len(final)
