"""Write a batch of events set-based: COPY, register ids, insert, quarantine — one transaction.

The steps are SQL files in `loader/sql/writer/`; the staging table's columns are defined
once, below, and every statement that lists them is built from that definition.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from psycopg import sql

from loader.batch import Candidate, LoadResult, Rejection
from loader.connection import Connection
from loader.contract import Event
from loader.sql_files import read_sql

# What a candidate brings to the staging table, in COPY order, with its type.
INCOMING_COLUMNS = {
    "position": "integer not null",
    "event_id": "uuid not null",
    "run_key": "text",
    "pipeline_id": "bigint",
    "pipeline_name": "text",
    "stage_name": "text",
    "status": "text not null",
    "event_time": "timestamptz not null",
    "records_processed": "bigint",
    "error_message": "text",
    "attempt": "integer not null",
    "attributes": "jsonb",
}
# What the resolution steps fill in.
RESOLVED_COLUMNS = {
    "stage_id": "bigint",
    "registered_name": "text",
    "pruned_at": "timestamptz",
    "rejection": "text",
}

_INCOMING_NAMES = sql.SQL(", ").join(map(sql.Identifier, INCOMING_COLUMNS))
_CREATE_INCOMING = sql.SQL(
    "create temporary table if not exists incoming_events ({}) on commit delete rows"
).format(
    sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(column_type))
        for name, column_type in {**INCOMING_COLUMNS, **RESOLVED_COLUMNS}.items()
    )
)
_COPY_INCOMING = sql.SQL("copy incoming_events ({}) from stdin").format(_INCOMING_NAMES)
_INSERT_INCOMING = sql.SQL("insert into incoming_events ({}) values ({})").format(
    _INCOMING_NAMES, sql.SQL(", ").join(sql.Placeholder() * len(INCOMING_COLUMNS))
)

# Below this many events a batch is a job's call: latency matters more than throughput.
_PIPELINED_BATCH_LIMIT = 100


def write_batch(
    conn: Connection,
    candidates: Sequence[Candidate],
    rejections: Sequence[Rejection] = (),
    *,
    source: str,
) -> LoadResult:
    """Store valid events and quarantine rejected ones, all in one transaction.

    Events whose run cannot be resolved (unknown id, new run without a name, a name that
    differs from the registered one) are quarantined here too. `conn` must be in
    autocommit mode, so that each batch commits on its own.
    """
    if not conn.autocommit:
        raise ValueError("write_batch needs an autocommit connection: each batch commits")
    if len(candidates) == 1 and not rejections and _insert_resolved(conn, candidates[0].event):
        return LoadResult(accepted=1)
    result = LoadResult(rejections=list(rejections))
    with conn.transaction():
        if candidates:
            result.accepted, late = _store(conn, candidates)
            late_rejections = [
                Rejection(reason, candidates[position].raw, candidates[position].line_number)
                for position, reason in late
            ]
            result.duplicates = len(candidates) - len(late_rejections) - result.accepted
            result.rejections.extend(late_rejections)
            result.rejections.sort(key=lambda item: item.line_number or 0)
        if result.rejections:
            with conn.cursor() as cursor:
                cursor.executemany(
                    read_sql("writer/insert_quarantine"),
                    [
                        {
                            "origin": source,
                            "line_number": item.line_number,
                            "reason": item.reason,
                            "raw_line": item.raw,
                        }
                        for item in result.rejections
                    ],
                )
    return result


def _store(conn: Connection, candidates: Sequence[Candidate]) -> tuple[int, list[Any]]:
    """Run the set-based steps; return the events inserted and (position, reason) rejected.

    After the COPY, every statement goes out in one pipeline: a single round trip. A small
    batch (a job's call) skips COPY, which cannot be pipelined, for a multi-row insert.
    """
    rows = (
        _incoming_row(position, candidate.event) for position, candidate in enumerate(candidates)
    )
    is_small = len(candidates) <= _PIPELINED_BATCH_LIMIT
    with conn.cursor() as steps, conn.cursor() as inserted, conn.cursor() as rejected:
        if not is_small:
            steps.execute(_CREATE_INCOMING)
            with steps.copy(_COPY_INCOMING) as copy:
                for row in rows:
                    copy.write_row(row)
        with conn.pipeline():
            if is_small:
                steps.execute(_CREATE_INCOMING)
                steps.executemany(_INSERT_INCOMING, list(rows))
            steps.execute(read_sql("writer/lock_runs"))
            steps.execute(read_sql("writer/resolve_by_run_key"))
            steps.execute(read_sql("writer/resolve_by_pipeline_id"))
            steps.execute(read_sql("writer/reject_unresolved"), {"final": False})
            steps.execute(read_sql("writer/register_runs"))
            steps.execute(read_sql("writer/resolve_by_run_key"))
            steps.execute(read_sql("writer/reject_unresolved"), {"final": True})
            steps.execute(read_sql("writer/register_stages"))
            steps.execute(read_sql("writer/resolve_stages"))
            inserted.execute(read_sql("writer/insert_events"))
            rejected.execute(read_sql("writer/select_rejections"))
        return max(inserted.rowcount, 0), rejected.fetchall()


def _insert_resolved(conn: Connection, event: Event) -> bool:
    """Try the one-statement path; return whether the event was stored by it."""
    params = dict(zip(INCOMING_COLUMNS, _incoming_row(0, event), strict=True))
    return conn.execute(read_sql("writer/insert_resolved_event"), params).rowcount == 1


def _incoming_row(position: int, event: Event) -> tuple[object, ...]:
    """An event as a row of the staging table, in INCOMING_COLUMNS' order."""
    return (
        position,
        event.event_id,
        event.run_key,
        event.pipeline_id,
        event.pipeline_name,
        event.stage_name,
        event.status,
        event.event_time,
        event.records_processed,
        event.error_message,
        event.attempt,
        None if event.attributes is None else json.dumps(event.attributes),
    )
