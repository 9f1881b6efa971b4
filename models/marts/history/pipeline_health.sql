{#- A table, rebuilt whole: every row is as of the build (as_of()). -#}
{{ config(materialized='table') }}

with

dim_pipelines as (
    select * from {{ ref('dim_pipelines') }}
),

{# Each part reads only what it needs through fct_pipeline_runs' indexes:
    the latest runs by (pipeline_name, created_at), the last 30 days, the
    open runs by completed_at. A build costs what the recent history holds,
    not what the whole history holds. Not materialized, so that each part
    is planned on the table and its indexes. #}
runs as not materialized (
    select * from {{ ref('fct_pipeline_runs') }}
),

latest_runs as (
    select
        dim_pipelines.pipeline_name,
        latest_run.pipeline_id,
        latest_run.status,
        latest_run.created_at
    from dim_pipelines
    cross join lateral (
        select
            runs.pipeline_id,
            runs.status,
            runs.created_at
        from runs
        where runs.pipeline_name = dim_pipelines.pipeline_name
        order by runs.created_at desc, runs.pipeline_id desc
        limit 1
    ) as latest_run
),

{# The last success is the latest to finish: by completed_at, ties by
    created_at (then id), the order the failure streak counts in. With
    overlapping runs, a run created later may finish earlier. #}
last_successes as (
    select
        dim_pipelines.pipeline_name,
        last_success.pipeline_id,
        last_success.created_at,
        last_success.completed_at
    from dim_pipelines
    cross join lateral (
        select
            runs.pipeline_id,
            runs.created_at,
            runs.completed_at
        from runs
        where
            runs.pipeline_name = dim_pipelines.pipeline_name
            and runs.status = 'completed'
        order by
            runs.completed_at desc,
            runs.created_at desc,
            runs.pipeline_id desc
        limit 1
    ) as last_success
),

recent_summaries as (
    select
        dim_pipelines.pipeline_name,
        recent.*
    from dim_pipelines
    cross join lateral (
        select
            count(*) filter (
                where runs.status = 'completed' and {{ within_days(7) }}
            ) as completed_7d,
            count(*) filter (
                where runs.status = 'failed' and {{ within_days(7) }}
            ) as failed_7d,
            count(*) filter (where runs.status = 'completed') as completed_30d,
            count(*) filter (where runs.status = 'failed') as failed_30d,
            percentile_cont(0.95) within group (
                order by runs.duration_seconds
            ) filter (
                where runs.status = 'completed'
            ) as duration_p95_seconds_30d
        from runs
        where
            runs.pipeline_name = dim_pipelines.pipeline_name
            and {{ within_days(30) }}
    ) as recent
),

open_summaries as (
    select
        pipeline_name,
        count(*) filter (where status = 'running') as running_runs,
        count(*) filter (where is_stale) as stale_runs
    from runs
    where completed_at is null
    group by pipeline_name
),

{# Failed runs finished after the last success, in completed_at order (ties
    by created_at, then id); runs still open neither extend nor break the
    streak. #}
failure_streaks as (
    select
        dim_pipelines.pipeline_name,
        streak.consecutive_failures
    from dim_pipelines
    left join last_successes
        on dim_pipelines.pipeline_name = last_successes.pipeline_name
    cross join lateral (
        select count(*) as consecutive_failures
        from runs
        where
            runs.pipeline_name = dim_pipelines.pipeline_name
            and runs.status = 'failed'
            {# coalesce, not "is null or": a range the index can bound. #}
            and runs.completed_at >= coalesce(
                last_successes.completed_at, '-infinity'::timestamptz
            )
            and (runs.completed_at, runs.created_at, runs.pipeline_id) > (
                coalesce(
                    last_successes.completed_at, '-infinity'::timestamptz
                ),
                coalesce(last_successes.created_at, '-infinity'::timestamptz),
                coalesce(last_successes.pipeline_id, 0)
            )
    ) as streak
),

measured as (
    select
        dim_pipelines.pipeline_name,
        dim_pipelines.owner,
        dim_pipelines.expected_schedule,
        dim_pipelines.stale_after_minutes,
        latest_runs.pipeline_id as last_run_id,
        latest_runs.status as last_run_status,
        latest_runs.created_at as last_run_at,
        last_successes.completed_at as last_success_at,
        failure_streaks.consecutive_failures::integer as consecutive_failures,
        {{ success_rate(
            'recent_summaries.completed_7d', 'recent_summaries.failed_7d'
        ) }} as success_rate_7d,
        {{ success_rate(
            'recent_summaries.completed_30d', 'recent_summaries.failed_30d'
        ) }} as success_rate_30d,
        recent_summaries.duration_p95_seconds_30d,
        coalesce(open_summaries.running_runs, 0)::integer as running_runs,
        coalesce(open_summaries.stale_runs, 0)::integer as stale_runs
    from dim_pipelines
    left join latest_runs
        on dim_pipelines.pipeline_name = latest_runs.pipeline_name
    left join last_successes
        on dim_pipelines.pipeline_name = last_successes.pipeline_name
    inner join recent_summaries
        on dim_pipelines.pipeline_name = recent_summaries.pipeline_name
    left join open_summaries
        on dim_pipelines.pipeline_name = open_summaries.pipeline_name
    inner join failure_streaks
        on dim_pipelines.pipeline_name = failure_streaks.pipeline_name
),

final as (
    select
        *,
        case
            when last_run_id is null then 'unknown'
            when stale_runs > 0 then 'stale'
            when
                consecutive_failures
                >= {{ var('failing_after_consecutive_failures') }}
                then 'failing'
            when
                consecutive_failures > 0
                or success_rate_7d
                < {{ var('degraded_below_success_rate') }}
                then 'degraded'
            else 'healthy'
        end as health,
        {{ as_of() }} as as_of
    from measured
)

select * from final
