with

dim_pipelines as (
    select * from {{ ref('dim_pipelines') }}
),

runs as (
    select * from {{ ref('fct_pipeline_runs') }}
),

latest_runs as (
    select distinct on (pipeline_name)
        pipeline_name,
        pipeline_id,
        status,
        created_at
    from runs
    order by pipeline_name asc, created_at desc, pipeline_id desc
),

run_summaries as (
    select
        pipeline_name,
        max(completed_at) filter (
            where status = 'completed'
        ) as last_success_at,
        max(created_at) filter (
            where status = 'completed'
        ) as last_success_created_at,
        count(*) filter (where status = 'running') as running_runs,
        count(*) filter (where is_stale) as stale_runs,
        count(*) filter (
            where status = 'completed' and {{ within_days(7) }}
        ) as completed_7d,
        count(*) filter (
            where status = 'failed' and {{ within_days(7) }}
        ) as failed_7d,
        count(*) filter (
            where status = 'completed' and {{ within_days(30) }}
        ) as completed_30d,
        count(*) filter (
            where status = 'failed' and {{ within_days(30) }}
        ) as failed_30d,
        percentile_cont(0.95) within group (order by duration_seconds)
        filter (
            where status = 'completed' and {{ within_days(30) }}
        ) as duration_p95_seconds_30d
    from runs
    group by pipeline_name
),

{# Failed runs since the last completed one, in created_at order; runs still
    open neither extend nor break the streak. #}
failure_streaks as (
    select
        runs.pipeline_name,
        count(*) as consecutive_failures
    from runs
    inner join run_summaries
        on runs.pipeline_name = run_summaries.pipeline_name
    where
        runs.status = 'failed'
        and (
            run_summaries.last_success_created_at is null
            or runs.created_at > run_summaries.last_success_created_at
        )
    group by runs.pipeline_name
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
        run_summaries.last_success_at,
        coalesce(failure_streaks.consecutive_failures, 0)::integer
            as consecutive_failures,
        {{ success_rate(
            'run_summaries.completed_7d', 'run_summaries.failed_7d'
        ) }} as success_rate_7d,
        {{ success_rate(
            'run_summaries.completed_30d', 'run_summaries.failed_30d'
        ) }} as success_rate_30d,
        run_summaries.duration_p95_seconds_30d,
        coalesce(run_summaries.running_runs, 0)::integer as running_runs,
        coalesce(run_summaries.stale_runs, 0)::integer as stale_runs
    from dim_pipelines
    left join latest_runs
        on dim_pipelines.pipeline_name = latest_runs.pipeline_name
    left join run_summaries
        on dim_pipelines.pipeline_name = run_summaries.pipeline_name
    left join failure_streaks
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
