-- A run's raw events may go when its derived rows are final: the run ended
-- (completed or failed) before the cut-off, and the builds that wrote its
-- pipelines row, every one of its pipeline_stages rows and its
-- marts.fct_pipeline_runs row (which reads the events for started_at) saw all
-- of its events: each event's loading transaction is below the build's snapshot
-- xmin, stored as _load_watermark. The other marts read only those.

with

event_horizons as (
    select
        pipeline_id,
        stage_id,
        max(load_xid) as last_load_xid
    from raw.run_events
    where
        pipeline_id in (
            select pipelines.id
            from public.pipelines
            where
                pipelines.status in ('completed', 'failed')
                and pipelines.completed_at < %(before)s  -- noqa: RF02
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
            fct_pipeline_runs._load_watermark <= event_horizons.last_load_xid,
            true
        )
        or (
            event_horizons.stage_id is not null
            and coalesce(
                pipeline_stages._load_watermark <= event_horizons.last_load_xid,
                true
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
