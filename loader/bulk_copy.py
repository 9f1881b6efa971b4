"""The bulk path: a clean batch resolved from its distinct keys, then one COPY into raw.

A batch of a bulk file usually needs none of the full path's decisions (`loader.writer`):
its events name their run by run_key, each run is registered or named in the batch with
one name, and nothing is pruned, parked, repeated or stored already. Such a batch takes
its runs' locks, registers its new runs and stages from their distinct keys and is copied
straight into raw.run_events: no staging table, no statement over every event but the
COPY. Anything else, a concurrent loader that registers a run or stores an event first
included, rolls the attempt back to its savepoint and the full path decides the batch.
The steps are SQL files in `loader/sql/bulk/`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson
import psycopg
from psycopg.types.json import Jsonb

from loader.batch import Candidate
from loader.connection import Connection
from loader.contract import Event
from loader.locks import RUN_LOCK_SPACE
from loader.plain_rows import PlainRows
from loader.sql_files import read_sql

# Binary: a row costs the loader a quarter of the CPU the text format does.
_COPY_EVENTS = (
    "copy raw.run_events (event_id, pipeline_id, stage_id, status, event_time,"
    " records_processed, error_message, attempt, run_attempt, attributes)"
    " from stdin (format binary)"
)
_COPY_TYPES = [
    "uuid",
    "int8",
    "int8",
    "text",
    "timestamptz",
    "int8",
    "text",
    "int4",
    "int4",
    "jsonb",
]


class _FullPath(Exception):
    """The batch needs the full path: raised inside the savepoint, to roll it back."""


def copy_clean_batch(
    conn: Connection, candidates: Sequence[Candidate], parked_max_age: float
) -> int | None:
    """Store a clean batch with one COPY, inside the caller's transaction.

    Return how many events it stored (all of them), or None when it stored nothing and
    the full path must decide the batch. Parked events past `parked_max_age` go to the
    quarantine first, as on the full path.
    """
    events = [candidate.event for candidate in candidates]
    names = _run_names(events)
    if names is None:
        return None

    def store() -> None:
        run_ids, new_runs = _resolve_runs(conn, names, parked_max_age, expire_parked=True)
        pairs = {
            (run_ids[event.run_key], event.stage_name)  # type: ignore[index]
            for event in events
            if event.stage_name is not None
        }
        _copy_events(conn, events, run_ids, _register_stages(conn, pairs, new_runs))

    return len(events) if _in_savepoint(conn, store) else None


def copy_plain_rows(
    conn: Connection, rows: PlainRows, parked_max_age: float, *, expire_parked: bool = True
) -> int | None:
    """`copy_clean_batch` for a batch the compiled check read (`loader.plain_rows`).

    Without `expire_parked`, the parked events past their age are left to another
    connection loading the same batch: two deletes of the same rows would wait for each
    other, and could deadlock.
    """
    names = rows.run_names()
    if names is None:
        return None

    def store() -> None:
        run_ids, new_runs = _resolve_runs(conn, names, parked_max_age, expire_parked)
        pairs = {(run_ids[run_key], stage_name) for run_key, stage_name in rows.run_stages()}
        stage_ids = _register_stages(conn, pairs, new_runs)
        with conn.cursor() as cursor, cursor.copy(_COPY_EVENTS) as copy:
            copy.write(rows.copy_data(run_ids, stage_ids))

    return len(rows) if _in_savepoint(conn, store) else None


def _in_savepoint(conn: Connection, store: Callable[[], None]) -> bool:
    """Run `store` in a savepoint; False, rolled back, when the full path must decide."""
    try:
        with conn.transaction():
            store()
    except _FullPath:
        return False
    except psycopg.errors.UniqueViolation:  # an event stored already: the full path counts it
        return False
    return True


def _copy_events(
    conn: Connection,
    events: Sequence[Event],
    run_ids: dict[str, int],
    stage_ids: dict[tuple[int, str], int],
) -> None:
    """One COPY of the batch into raw.run_events.

    An event_id stored already fails it (the primary key): a redelivery, or a concurrent
    loader that stored it first. Looking the ids up beforehand would cost every fresh
    batch a fifth of its time; a redelivered batch fails at its first row.
    """
    with conn.cursor() as cursor, cursor.copy(_COPY_EVENTS) as copy:
        copy.set_types(_COPY_TYPES)
        for event in events:
            pipeline_id = run_ids[event.run_key]  # type: ignore[index]
            stage_id = (
                None if event.stage_name is None else stage_ids[pipeline_id, event.stage_name]
            )
            attributes = None if event.attributes is None else Jsonb(event.attributes)
            copy.write_row(
                (
                    event.event_id,
                    pipeline_id,
                    stage_id,
                    event.status,
                    event.event_time,
                    event.records_processed,
                    event.error_message,
                    event.attempt,
                    event.run_attempt,
                    attributes,
                )
            )


def _run_names(events: Sequence[Event]) -> dict[str, str | None] | None:
    """Each run_key of the batch with the name the batch gives it (None: no name).

    None when the batch is not clean on its face: an event named by pipeline_id, two names
    for one run. An event_id given twice fails the COPY (the primary key), as one stored
    already does: a set of the batch's ids cost every clean batch a twentieth of its load.
    """
    names: dict[str, str | None] = {}
    for event in events:
        if event.pipeline_id is not None or event.run_key is None:
            return None
        named = names.setdefault(event.run_key, event.pipeline_name)
        if event.pipeline_name is not None and named != event.pipeline_name:
            if named is not None:
                return None
            names[event.run_key] = event.pipeline_name
    return names


def _resolve_runs(
    conn: Connection, names: dict[str, str | None], parked_max_age: float, expire_parked: bool
) -> tuple[dict[str, int], set[int]]:
    """Lock the batch's registered runs, check them, register its new ones: run_key → id,
    and the ids of the runs registered here."""
    # Lists go as JSON: psycopg dumps an array parameter element by element, which cost
    # the writing thread 0.3 µs an event of a bulk batch (its runs and stages).
    params: dict[str, Any] = {
        "run_keys": _json(list(names)),
        "run_lock_space": RUN_LOCK_SPACE,
        "max_age": parked_max_age,
    }
    with conn.cursor() as steps, conn.cursor() as runs, conn.cursor() as parked:
        with conn.pipeline():
            if expire_parked:
                steps.execute(read_sql("writer/expire_parked"), params)
            steps.execute(read_sql("bulk/lock_named_runs"), params)
            runs.execute(read_sql("bulk/read_named_runs"), params)
            parked.execute(read_sql("bulk/parked_to_move"), params)
        [(has_parked_to_move,)] = parked.fetchall()
        if has_parked_to_move:
            raise _FullPath
        run_ids: dict[str, int] = {}
        new: dict[str, str] = {}
        for run_key, pipeline_id, registered_name, is_pruned in runs.fetchall():
            name = names[run_key]
            if pipeline_id is None and name is not None:
                new[run_key] = name
            elif pipeline_id is None or is_pruned or name not in (None, registered_name):
                raise _FullPath  # to park, closed, or a name that differs: reasons to give
            else:
                run_ids[run_key] = pipeline_id
    if new:
        registered = conn.execute(
            read_sql("bulk/register_new_runs"),
            {"runs": _json(list(new.items()))},
        ).fetchall()
        if len(registered) < len(new):
            raise _FullPath  # a concurrent batch registered one first
        run_ids.update(registered)
    return run_ids, {pipeline_id for _, pipeline_id in registered} if new else set()


def _register_stages(
    conn: Connection, pairs: set[tuple[int, str]], new_runs: set[int]
) -> dict[tuple[int, str], int]:
    """Register the batch's new stages: (run id, stage name) → stage id, for every pair.

    A run registered in this transaction has no stages yet, and no other transaction can
    see it to give it one: its stages are inserted as they are, with no lookup (a bulk
    file's runs are mostly new, and the lookups were half the statement's time).
    """
    of_new = [pair for pair in pairs if pair[0] in new_runs]
    of_known = [pair for pair in pairs if pair[0] not in new_runs]
    rows: list[tuple[int, str, int]] = []
    with conn.cursor() as new, conn.cursor() as known, conn.pipeline():
        for cursor, statement, some in (
            (new, "bulk/register_stages_of_new_runs", of_new),
            (known, "bulk/register_stages", of_known),
        ):
            if some:
                cursor.execute(read_sql(statement), {"pairs": _json(some)})
        for cursor, some in ((new, of_new), (known, of_known)):
            if some:
                rows.extend(cursor.fetchall())
    stage_ids = {(pipeline_id, name): stage_id for pipeline_id, name, stage_id in rows}
    if len(stage_ids) < len(pairs):
        raise _FullPath  # a concurrent batch registered one after this one looked
    return stage_ids


def _json(value: object) -> str:
    """A list of names, ids and pairs as JSON text (text: psycopg encodes it in the
    connection's encoding, which refuses what the database cannot hold)."""
    return orjson.dumps(value).decode()
