"""Retention: delete the raw events of runs that ended long ago, once dbt has them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from loader.connection import Connection
from loader.errors import ConfigurationError

# A run's raw events may go when its derived rows are final: the run ended (completed
# or failed) before the cut-off, and the builds that wrote its pipelines row, every one
# of its pipeline_stages rows and its marts.fct_pipeline_runs row (which reads the events
# for started_at) saw all of its events: each event's loading transaction is below the
# build's snapshot xmin, stored as _load_watermark. The other marts read only those.
_PRUNE = """
with

event_horizons as (
    select
        pipeline_id,
        stage_id,
        max(load_xid) as last_load_xid
    from raw.run_events
    where pipeline_id in (
        select pipelines.id
        from public.pipelines
        where
            pipelines.status in ('completed', 'failed')
            and pipelines.completed_at < %(before)s
    )
    group by pipeline_id, stage_id
),

unfinished_runs as (
    select event_horizons.pipeline_id
    from event_horizons
    inner join public.pipelines
        on event_horizons.pipeline_id = pipelines.id
    left join public.pipeline_stages
        on event_horizons.stage_id = pipeline_stages.id
    left join marts.fct_pipeline_runs
        on event_horizons.pipeline_id = fct_pipeline_runs.pipeline_id
    where
        pipelines._load_watermark <= event_horizons.last_load_xid
        or coalesce(
            fct_pipeline_runs._load_watermark <= event_horizons.last_load_xid, true
        )
        or (
            event_horizons.stage_id is not null
            and coalesce(
                pipeline_stages._load_watermark <= event_horizons.last_load_xid, true
            )
        )
),

final_runs as (
    select distinct pipeline_id from event_horizons
    except
    select pipeline_id from unfinished_runs
),

closed_runs as (
    update raw.runs
    set pruned_at = now()
    where pipeline_id in (select pipeline_id from final_runs)
    returning pipeline_id
),

deleted_events as (
    delete from raw.run_events
    where pipeline_id in (select pipeline_id from closed_runs)
    returning pipeline_id
)

select
    (select count(*) from closed_runs) as runs,
    (select count(*) from deleted_events) as events,
    (select count(distinct pipeline_id) from unfinished_runs) as kept
"""


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
        row = conn.execute(_PRUNE, {"before": before}).fetchone()
    assert row is not None
    return PruneResult(runs=row[0], events=row[1], kept=row[2])
