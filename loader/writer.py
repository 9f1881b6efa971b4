"""Write a batch of events set-based: COPY, register ids, insert, quarantine — one transaction."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from loader.connection import Connection
from loader.events import Event


@dataclass(frozen=True, slots=True)
class Rejection:
    """A line or event that broke the contract, with the reason and its original bytes."""

    reason: str
    raw: bytes
    line_number: int | None = None

    def __str__(self) -> str:
        if self.line_number is None:
            return self.reason
        return f"line {self.line_number}: {self.reason}"


@dataclass(slots=True)
class LoadResult:
    """What a load did: events newly stored, duplicates skipped, lines rejected or spooled."""

    accepted: int = 0
    duplicates: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    spooled: int = 0
    """Events kept in the local spool because the database was unreachable."""

    @property
    def rejected(self) -> int:
        """How many lines or events were quarantined."""
        return len(self.rejections)

    def add(self, other: LoadResult) -> None:
        """Fold another batch's result into this one."""
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.rejections.extend(other.rejections)
        self.spooled += other.spooled


@dataclass(frozen=True, slots=True)
class Candidate:
    """A valid event waiting to be written, with where it came from."""

    event: Event
    raw: bytes
    line_number: int | None = None


_CREATE_INCOMING = """
create temporary table if not exists incoming_events (
    position integer not null,
    event_id uuid not null,
    run_key text,
    pipeline_id bigint,
    pipeline_name text,
    stage_name text,
    status text not null,
    event_time timestamptz not null,
    records_processed bigint,
    error_message text,
    attempt integer not null,
    attributes jsonb,
    stage_id bigint,
    registered_name text,
    pruned_at timestamptz,
    rejection text
) on commit delete rows
"""

# Below this many events a batch is a job's call: latency matters more than throughput.
_PIPELINED_BATCH_LIMIT = 100

_INSERT_INCOMING = """
insert into incoming_events (
    position, event_id, run_key, pipeline_id, pipeline_name, stage_name, status,
    event_time, records_processed, error_message, attempt, attributes
) values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""

_COPY_INCOMING = """
copy incoming_events (
    position, event_id, run_key, pipeline_id, pipeline_name, stage_name, status,
    event_time, records_processed, error_message, attempt, attributes
) from stdin
"""

# Only events not yet resolved or rejected are touched, so each of these can run
# again after new runs are registered.
_RESOLVE_BY_RUN_KEY = """
update incoming_events as incoming
set registered_name = runs.pipeline_name,
    pruned_at = runs.pruned_at,
    rejection = case
        when incoming.pipeline_id <> runs.pipeline_id then format(
            'pipeline_id: %s does not match run_key %L, which has id %s',
            incoming.pipeline_id, incoming.run_key, runs.pipeline_id)
    end,
    pipeline_id = runs.pipeline_id
from raw.runs as runs
where
    incoming.registered_name is null
    and incoming.rejection is null
    and runs.run_key = incoming.run_key
"""

_RESOLVE_BY_PIPELINE_ID = """
update incoming_events as incoming
set registered_name = runs.pipeline_name,
    pruned_at = runs.pruned_at
from raw.runs as runs
where incoming.run_key is null and runs.pipeline_id = incoming.pipeline_id
"""

# Before registration (%(final)s false) an unresolved run_key may still be a new
# run; after it, an unresolved run_key had no pipeline_name anywhere in the batch.
_REJECT_UNRESOLVED = """
update incoming_events
set rejection = case
    when registered_name is null and run_key is null then format(
        'pipeline_id: %%s is not a known run id', pipeline_id)
    when registered_name is null and pipeline_id is not null then format(
        'pipeline_id: %%s does not match run_key %%L, a new run', pipeline_id, run_key)
    when registered_name is null and %(final)s then format(
        'pipeline_name: required, run_key %%L is a new run '
        'and nothing in its batch names its pipeline',
        run_key)
    when pruned_at is not null then format(
        'pipeline_id: run %%s was pruned at %%s, its history is closed',
        pipeline_id, pruned_at)
    when pipeline_name <> registered_name then format(
        'pipeline_name: %%L differs from %%L, the name this run was registered with',
        pipeline_name, registered_name)
end
where rejection is null
"""

# Register new runs from the events that passed the checks above; the lowest
# position naming a run_key decides its pipeline_name. Ordered by key so that
# concurrent batches lock registry rows in the same order; known keys are
# filtered out first so that the identity sequence is not spent on them.
_REGISTER_RUNS = """
insert into raw.runs (run_key, pipeline_name)
select run_key, pipeline_name
from (
    select distinct on (run_key) run_key, pipeline_name
    from incoming_events
    where
        rejection is null
        and registered_name is null
        and run_key is not null
        and pipeline_name is not null
    order by run_key, position
) as named_runs
where not exists (select from raw.runs where runs.run_key = named_runs.run_key)
order by run_key
on conflict (run_key) do nothing
"""

_REGISTER_STAGES = """
insert into raw.stages (pipeline_id, stage_name)
select distinct incoming.pipeline_id, incoming.stage_name
from incoming_events as incoming
where
    incoming.rejection is null
    and incoming.stage_name is not null
    and not exists (
        select from raw.stages
        where
            stages.pipeline_id = incoming.pipeline_id
            and stages.stage_name = incoming.stage_name
    )
order by incoming.pipeline_id, incoming.stage_name
on conflict (pipeline_id, stage_name) do nothing
"""

_RESOLVE_STAGES = """
update incoming_events as incoming
set stage_id = stages.stage_id
from raw.stages as stages
where incoming.rejection is null
    and stages.pipeline_id = incoming.pipeline_id
    and stages.stage_name = incoming.stage_name
"""

# The first delivery of an event_id wins: the lowest position in this batch, and
# anything already stored before it.
_INSERT_EVENTS = """
insert into raw.run_events (
    event_id, pipeline_id, stage_id, status, event_time,
    records_processed, error_message, attempt, attributes
)
select distinct on (event_id)
    event_id, pipeline_id, stage_id, status, event_time,
    records_processed, error_message, attempt, attributes
from incoming_events
where rejection is null
order by event_id, position
on conflict (event_id) do nothing
"""

# One event of a run and stage already registered, in one statement (a job's usual call).
# It inserts nothing when anything needs the full path: a new run or stage, a name that
# differs, or a duplicate event_id; the full path then decides, in its own transaction.
_INSERT_RESOLVED_EVENT = """
insert into raw.run_events (
    event_id, pipeline_id, stage_id, status, event_time,
    records_processed, error_message, attempt, attributes
)
select
    %(event_id)s, runs.pipeline_id, stages.stage_id, %(status)s, %(event_time)s,
    %(records_processed)s, %(error_message)s, %(attempt)s, %(attributes)s::jsonb
from raw.runs
left join raw.stages
    on stages.pipeline_id = runs.pipeline_id and stages.stage_name = %(stage_name)s
where
    runs.pipeline_id = coalesce(
        %(pipeline_id)s::bigint,
        (select by_key.pipeline_id from raw.runs as by_key where by_key.run_key = %(run_key)s)
    )
    and (%(run_key)s::text is null or runs.run_key = %(run_key)s)
    and (%(pipeline_name)s::text is null or runs.pipeline_name = %(pipeline_name)s)
    and (%(stage_name)s::text is null) = (stages.stage_id is null)
    and runs.pruned_at is null
on conflict (event_id) do nothing
"""

_SELECT_REJECTIONS = """
select position, rejection from incoming_events where rejection is not null
"""

_INSERT_QUARANTINE = """
insert into raw.quarantined_events (origin, line_number, reason, raw_line)
values (%s, %s, %s, %s)
"""


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
                    _INSERT_QUARANTINE,
                    [
                        (source, item.line_number, item.reason, item.raw)
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
            steps.execute(_RESOLVE_BY_RUN_KEY)
            steps.execute(_RESOLVE_BY_PIPELINE_ID)
            steps.execute(_REJECT_UNRESOLVED, {"final": False})
            steps.execute(_REGISTER_RUNS)
            steps.execute(_RESOLVE_BY_RUN_KEY)
            steps.execute(_REJECT_UNRESOLVED, {"final": True})
            steps.execute(_REGISTER_STAGES)
            steps.execute(_RESOLVE_STAGES)
            inserted.execute(_INSERT_EVENTS)
            rejected.execute(_SELECT_REJECTIONS)
        return max(inserted.rowcount, 0), rejected.fetchall()


def _insert_resolved(conn: Connection, event: Event) -> bool:
    """Try the one-statement path; return whether the event was stored by it."""
    params = dict(zip(_INCOMING_COLUMNS, _incoming_row(0, event), strict=True))
    return conn.execute(_INSERT_RESOLVED_EVENT, params).rowcount == 1


_INCOMING_COLUMNS = (
    "position", "event_id", "run_key", "pipeline_id", "pipeline_name", "stage_name",
    "status", "event_time", "records_processed", "error_message", "attempt", "attributes",
)  # fmt: skip


def _incoming_row(position: int, event: Event) -> tuple[object, ...]:
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
