-- Which locked runs ($1 -> 'runs') have final derived rows: still ended before
-- the cut-off ($1 ->> 'before'), and the builds that wrote its pipelines row,
-- every one of its pipeline_stages rows and its marts.fct_pipeline_runs row
-- (which reads the events for started_at) saw all of its events: each event's
-- loading transaction is below the build's snapshot xmin, stored as
-- _load_watermark. The other marts read only those. Run with the owner's rights
-- of what dbt built, in a statement after the locks are held, so its snapshot
-- includes every event committed before them. Watermarks are compared as xid8
-- whatever type a model stores them in (xid8 or bigint).

with

locked_runs as (
    select jsonb_array_elements_text($1 -> 'runs')::bigint
        as pipeline_id
),

event_horizons as (
    select
        events.pipeline_id,
        bool_or(events.stage_id is not null) as has_stage_events,
        max(events.load_xid) as last_load_xid
    from raw.run_events as events
    where
        events.pipeline_id in (select locked_runs.pipeline_id from locked_runs)
    group by events.pipeline_id
),

-- A build rewrites all of a run's stages together (an event's stage may be
-- another stage of its run), so the run's oldest stage row dates them all.
stage_horizons as (
    select
        pipeline_stages.pipeline_id,
        min(pipeline_stages._load_watermark::text::xid8) as built_at
    from public.pipeline_stages
    where
        pipeline_stages.pipeline_id
        in (select locked_runs.pipeline_id from locked_runs)
    group by pipeline_stages.pipeline_id
),

unfinished_runs as (
    select event_horizons.pipeline_id
    from event_horizons
    left join public.pipelines
        on event_horizons.pipeline_id = pipelines.id
    left join stage_horizons
        on event_horizons.pipeline_id = stage_horizons.pipeline_id
    left join marts.fct_pipeline_runs
        on event_horizons.pipeline_id = fct_pipeline_runs.pipeline_id
    where
        coalesce(
            pipelines.status not in ('completed', 'failed')
            or pipelines.completed_at >= ($1 ->> 'before')::timestamptz
            or pipelines._load_watermark::text::xid8
            <= event_horizons.last_load_xid,
            true
        )
        or coalesce(
            fct_pipeline_runs._load_watermark::text::xid8
            <= event_horizons.last_load_xid,
            true
        )
        or (
            event_horizons.has_stage_events
            and coalesce(
                stage_horizons.built_at <= event_horizons.last_load_xid, true
            )
        )
)

select
    event_horizons.pipeline_id,
    event_horizons.pipeline_id not in (
        select unfinished_runs.pipeline_id from unfinished_runs
    ) as is_final
from event_horizons
