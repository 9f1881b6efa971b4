-- A contract-valid history of %(runs)s runs, set-based, for the dbt benchmark.
-- Each run has 4 stages: run running, then per stage running, a heartbeat and
-- completed (every 25th run fails in "load"), then run completed or failed:
-- 14 events a run. A run starts every %(run_interval_seconds)s seconds, the
-- last one now: a longer history is older, not denser, as one that grows
-- day by day would be. The registries are filled first, as the loader would,
-- so the ids stay consistent.

insert into raw.runs (run_key, pipeline_name)
select
    'bench-' || n as run_key,
    'bench_pipeline_' || n %% 20 as pipeline_name
from generate_series(1, %(runs)s) as n
order by n;

insert into raw.stages (pipeline_id, stage_name)
select
    runs.pipeline_id,
    stage.stage_name
from raw.runs
cross join
    unnest(array['extract', 'transform', 'load', 'publish'])
    with ordinality as stage (stage_name, position)
where
    runs.run_key like 'bench-%%'
    -- a failing run stops at "load": it never registers "publish"
    and (
        split_part(runs.run_key, '-', 2)::bigint %% 25 != 0
        or stage.stage_name != 'publish'
    )
order by runs.pipeline_id, stage.position;

insert into raw.run_events (
    event_id, pipeline_id, stage_id, status, event_time,
    records_processed, error_message, attempt
)
with

timed_runs as (
    select
        pipeline_id,
        split_part(run_key, '-', 2)::bigint as n,
        now() - make_interval(
            secs => %(run_interval_seconds)s
            * (%(runs)s - split_part(run_key, '-', 2)::bigint)
        ) as started_at,
        split_part(run_key, '-', 2)::bigint %% 25 = 0 as fails
    from raw.runs
    where run_key like 'bench-%%'
),

timed_stages as (
    select
        timed_runs.*,
        stages.stage_id,
        stages.stage_name,
        array_position(
            array['extract', 'transform', 'load', 'publish'],
            stages.stage_name
        ) as position
    from timed_runs
    inner join raw.stages on timed_runs.pipeline_id = stages.pipeline_id
),

events as (
    select
        n, 0 as kind, pipeline_id, null::bigint as stage_id,
        'running' as status, started_at as event_time,
        null::bigint as records, null as error
    from timed_runs
    union all
    select
        n, 1, pipeline_id, null,
        case when fails then 'failed' else 'completed' end,
        started_at + interval '45 minutes',
        case when not fails then n %% 1000 * 4 end,
        null
    from timed_runs
    union all
    select
        n, 1 + position * 3, pipeline_id, stage_id, 'running',
        started_at + interval '10 minutes' * (position - 1), null, null
    from timed_stages
    union all
    select
        n, 2 + position * 3, pipeline_id, stage_id, 'running',
        started_at + interval '10 minutes' * (position - 1)
        + interval '5 minutes',
        n %% 1000 * position / 2, null
    from timed_stages
    union all
    select
        n, 3 + position * 3, pipeline_id, stage_id,
        case when fails and stage_name = 'load' then 'failed' else 'completed' end,
        started_at + interval '10 minutes' * (position - 1)
        + interval '9 minutes',
        n %% 1000 * position,
        case
            when fails and stage_name = 'load'
                then 'timeout after ' || n %% 60 || 's'
        end
    from timed_stages
)

select
    (lpad(to_hex(n), 24, '0') || lpad(to_hex(kind), 8, '0'))::uuid,
    pipeline_id,
    stage_id,
    status,
    event_time,
    records,
    error,
    1
from events
order by n, kind;
