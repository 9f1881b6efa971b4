{#- Completed runs only, on both sides: a failed run's records and duration
    say how it failed, not how the pipeline behaves. -#}
{%- set baseline_runs = var('anomaly_baseline_runs') | int -%}

with

completed_runs as (
    select * from {{ ref('fct_pipeline_runs') }}
    where status = 'completed'
),

measurements as (
    select
        pipeline_id,
        run_key,
        pipeline_name,
        created_at,
        'records_processed' as metric,
        records_processed::double precision as measured_value
    from completed_runs
    where records_processed is not null
    union all
    select
        pipeline_id,
        run_key,
        pipeline_name,
        created_at,
        'duration_seconds' as metric,
        duration_seconds as measured_value
    from completed_runs
    where duration_seconds is not null
),

{# The frame ends one row before the run: it is never its own baseline. #}
baselines as (
    select
        *,
        count(measured_value) over previous_runs as baseline_runs,
        avg(measured_value) over previous_runs as baseline_mean,
        stddev_samp(measured_value) over previous_runs as baseline_stddev
    from measurements
    window previous_runs as (
        partition by pipeline_name, metric
        order by created_at, pipeline_id
        rows between {{ baseline_runs }} preceding and 1 preceding
    )
),

{# A flat baseline has no spread to divide by: any departure from it is
    anomalous, with no z-score. #}
scored as (
    select
        *,
        (measured_value - baseline_mean) / nullif(baseline_stddev, 0)
            as z_score
    from baselines
    where baseline_runs >= {{ var('anomaly_min_baseline_runs') }}
),

final as (
    select
        pipeline_id,
        run_key,
        pipeline_name,
        created_at,
        metric,
        measured_value,
        baseline_mean,
        baseline_stddev,
        baseline_runs::integer as baseline_runs,
        z_score,
        case
            when measured_value > baseline_mean then 'high' else 'low'
        end as direction
    from scored
    where
        abs(z_score) >= {{ var('anomaly_z_threshold') }}
        or (baseline_stddev = 0 and measured_value != baseline_mean)
)

select * from final
