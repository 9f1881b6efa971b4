"""Write a batch of events set-based: COPY, register ids, insert, quarantine — one transaction.

A clean batch of a bulk file takes the bulk path (`loader.bulk_copy`) first.

The steps are SQL files in `loader/sql/writer/`; the staging table's columns are defined
once, below, and every statement that lists them is built from that definition.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import orjson
from psycopg import sql

from loader.batch import Candidate, LoadResult, Rejection
from loader.bulk_copy import copy_clean_batch
from loader.connection import Connection
from loader.contract import DEFAULT_PARKED_MAX_AGE, Event
from loader.locks import RUN_LOCK_SPACE
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
    "run_attempt": "integer not null",
    "attributes": "jsonb",
}
# What the resolution steps fill in, and where an unparked event came from.
RESOLVED_COLUMNS = {
    "stage_id": "bigint",
    "registered_name": "text",
    "pruned_at": "timestamptz",
    "rejection": "text",
    "is_parked": "boolean not null default false",
    "origin": "text",
    "line_number": "bigint",
    "raw_line": "bytea",
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


def _insert_resolved_from(incoming: sql.Composable) -> str:
    """The resolved path's statement with `incoming` (a query of INCOMING_COLUMNS) in front.

    Composed once per shape, to text: a job's call runs it, and psycopg prepares it by its
    text. The file's own `with` list goes on after the `incoming` entry.
    """
    return sql.Composed(
        [
            sql.SQL("with incoming as ({})\n").format(incoming),
            sql.SQL(read_sql("writer/insert_resolved_events").replace("\nwith\n", "\n,\n", 1)),
        ]
    ).as_string()


_COLUMN_TYPES = {
    name: column_type.removesuffix(" not null") for name, column_type in INCOMING_COLUMNS.items()
}
# A small batch (a collector's group): its rows as one JSON array, one parameter. An array
# parameter per column cost the collector's writing thread a fifth of its time under the
# GIL (psycopg dumps each array element by element); orjson writes the whole group at once.
_INSERT_RESOLVED = _insert_resolved_from(
    sql.SQL("select * from json_to_recordset({}::json) as incoming ({})").format(
        sql.Placeholder("events"),
        sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(column_type))
            for name, column_type in _COLUMN_TYPES.items()
        ),
    )
)
# One event, the usual job's call: a value per column, not an array each. The API's p50 in
# `make bench` went from 1.9 to 1.45 times a plain INSERT's.
_INSERT_ONE_RESOLVED = _insert_resolved_from(
    sql.SQL("select {}").format(
        sql.SQL(", ").join(
            sql.SQL("{}::{} as {}").format(
                sql.Placeholder(name), sql.SQL(column_type), sql.Identifier(name)
            )
            for name, column_type in _COLUMN_TYPES.items()
        )
    )
)
_INSERT_INCOMING = sql.SQL("insert into incoming_events ({}) values ({})").format(
    _INCOMING_NAMES, sql.SQL(", ").join(sql.Placeholder() * len(INCOMING_COLUMNS))
)

# Below this many events a batch is a job's call: latency matters more than throughput.
PIPELINED_BATCH_LIMIT = 100


def write_batch(
    conn: Connection,
    candidates: Sequence[Candidate],
    rejections: Sequence[Rejection] = (),
    *,
    source: str,
    parked_max_age: float = DEFAULT_PARKED_MAX_AGE,
) -> LoadResult:
    """Store valid events and quarantine rejected ones, all in one transaction.

    Events whose run cannot be resolved (unknown id, a name that differs from the
    registered one, a pruned run) are quarantined here too. An event of an unknown
    run_key that nothing in the batch names is parked until an event naming its run
    arrives, and quarantined if none does within `parked_max_age` seconds. `conn` must
    be in autocommit mode, so that each batch commits on its own.
    """
    if not conn.autocommit:
        raise ValueError("write_batch needs an autocommit connection: each batch commits")
    if 0 < len(candidates) <= PIPELINED_BATCH_LIMIT and not rejections:
        distinct = len({candidate.event.event_id for candidate in candidates})
        if _insert_resolved(conn, candidates) == distinct:
            return LoadResult(accepted=distinct, duplicates=len(candidates) - distinct)
    result = LoadResult(rejections=list(rejections))
    with conn.transaction():
        copied = None
        if len(candidates) > PIPELINED_BATCH_LIMIT:
            copied = copy_clean_batch(conn, candidates, parked_max_age)
        if copied is not None:
            result.accepted = copied
        elif candidates:
            result.accepted, result.unparked, outcomes = _store(conn, candidates, parked_max_age)
            parked: list[Candidate] = []
            for position, reason, is_parked in outcomes:
                candidate = candidates[position]
                if is_parked:
                    parked.append(candidate)
                else:
                    result.rejections.append(
                        Rejection(reason, candidate.raw, candidate.line_number)
                    )
            _park(conn, parked, source)
            result.parked = len(parked)
            result.duplicates = (
                len(candidates)
                - result.accepted
                - result.parked
                - (result.rejected - len(rejections))
            )
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


def _store(
    conn: Connection, candidates: Sequence[Candidate], parked_max_age: float
) -> tuple[int, int, list[Any]]:
    """Run the set-based steps.

    Return the batch's events inserted, the parked events that landed with them, and the
    (position, rejection, is_parked) of the batch's events that did not land. After the
    COPY, every statement goes out in one pipeline: a single round trip. A small batch (a
    job's call) skips COPY, which cannot be pipelined, for a multi-row insert.
    """
    rows = (
        _incoming_row(position, candidate.event) for position, candidate in enumerate(candidates)
    )
    is_small = len(candidates) <= PIPELINED_BATCH_LIMIT
    with conn.cursor() as steps, conn.cursor() as inserted, conn.cursor() as outcomes:
        if not is_small:
            steps.execute(_CREATE_INCOMING)
            with steps.copy(_COPY_INCOMING) as copy:
                for row in rows:
                    copy.write_row(row)
        with conn.pipeline():
            if is_small:
                steps.execute(_CREATE_INCOMING)
                steps.executemany(_INSERT_INCOMING, list(rows))
            steps.execute(read_sql("writer/expire_parked"), {"max_age": parked_max_age})
            steps.execute(read_sql("writer/lock_runs"), {"run_lock_space": RUN_LOCK_SPACE})
            steps.execute(read_sql("writer/resolve_by_run_key"))
            steps.execute(read_sql("writer/resolve_by_pipeline_id"))
            steps.execute(read_sql("writer/reject_unresolved"))
            steps.execute(read_sql("writer/register_runs"))
            steps.execute(read_sql("writer/unpark"))
            steps.execute(read_sql("writer/resolve_by_run_key"))
            steps.execute(read_sql("writer/reject_unresolved"))
            steps.execute(read_sql("writer/park_unresolved"))
            steps.execute(read_sql("writer/register_stages"))
            steps.execute(read_sql("writer/resolve_stages"))
            inserted.execute(read_sql("writer/insert_events"))
            steps.execute(read_sql("writer/quarantine_unparked"))
            outcomes.execute(read_sql("writer/select_outcomes"))
        [(accepted, unparked)] = inserted.fetchall()
        return accepted, unparked, outcomes.fetchall()


def _park(conn: Connection, parked: Sequence[Candidate], source: str) -> None:
    """Keep events of a run nobody named yet, whole, until an event names it."""
    if not parked:
        return
    with conn.cursor() as cursor:
        cursor.executemany(
            read_sql("writer/park_event"),
            [
                {
                    **dict(zip(INCOMING_COLUMNS, _incoming_row(0, candidate.event), strict=True)),
                    "origin": source,
                    "line_number": candidate.line_number,
                    "raw_line": candidate.raw,
                }
                for candidate in parked
            ],
        )


def _insert_resolved(conn: Connection, candidates: Sequence[Candidate]) -> int:
    """Try the resolved path: all of a small batch in one statement, or nothing.

    Return how many events it inserted: all of the batch's distinct events when every
    one is of a registered run and stage and new, else none (the full path decides).
    One statement in autocommit, runs' locks included: a single round trip.
    """
    if len(candidates) == 1:
        statement = _INSERT_ONE_RESOLVED
        row = _incoming_row(0, candidates[0].event)
        params: dict[str, object] = dict(zip(INCOMING_COLUMNS, row, strict=True))
    else:
        statement = _INSERT_RESOLVED
        rows = [
            dict(zip(INCOMING_COLUMNS, _incoming_values(position, candidate.event), strict=True))
            for position, candidate in enumerate(candidates)
        ]
        params = {"events": _rows_json(rows)}
    params["run_lock_space"] = RUN_LOCK_SPACE
    inserted = conn.execute(statement, params)
    return max(inserted.rowcount, 0)


def _incoming_row(position: int, event: Event) -> tuple[object, ...]:
    """An event as a row of the staging table, in INCOMING_COLUMNS' order."""
    *values, attributes = _incoming_values(position, event)
    return (*values, None if attributes is None else json.dumps(attributes))


def _incoming_values(position: int, event: Event) -> tuple[object, ...]:
    """An event's INCOMING_COLUMNS values, in order, `attributes` as the object they are."""
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
        event.run_attempt,
        event.attributes,
    )


def _rows_json(rows: object) -> str:
    """Rows as JSON text for `_INSERT_RESOLVED`: orjson, or the standard encoder for an
    integer past 64 bits (JSON allows one in attributes, and jsonb keeps it; orjson refuses
    it). Text, not bytes: psycopg encodes text in the connection's encoding, which refuses
    a character the database cannot hold, as it does for every other statement."""
    try:
        return orjson.dumps(rows).decode()
    except orjson.JSONEncodeError:
        return json.dumps(rows, default=str, ensure_ascii=False)
