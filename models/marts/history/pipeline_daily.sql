{{ config(
    incremental_strategy='replace_partitions',
    unique_key=['pipeline_name', 'run_date'],
    placeholder_column='runs_started',
    indexes=[
        {'columns': ['pipeline_name', 'run_date'], 'unique': True},
        {'columns': ['_load_watermark']},
    ],
) }}

with

{{ daily_mart_inputs({'runs': ref('fct_pipeline_runs')}) }},

{# A day left without runs still gets a row: the placeholder that clears it. #}
days as (
    {{ daily_mart_days('runs') }}
),

daily_runs as (
    select
        pipeline_name,
        run_date,
        count(*) as runs_started,
        count(*) filter (where status = 'completed') as runs_completed,
        count(*) filter (where status = 'failed') as runs_failed,
        count(*) filter (where completed_at is null) as runs_open,
        sum(records_processed) as records_processed,
        {{ completed_duration_columns() }}
    from runs
    group by pipeline_name, run_date
),

final as (
    select
        days.pipeline_name,
        days.run_date,
        daily_runs.runs_started::integer as runs_started,
        daily_runs.runs_completed::integer as runs_completed,
        daily_runs.runs_failed::integer as runs_failed,
        daily_runs.runs_open::integer as runs_open,
        {{ success_rate(
            'daily_runs.runs_completed', 'daily_runs.runs_failed'
        ) }} as success_rate,
        daily_runs.records_processed::bigint as records_processed,
        daily_runs.duration_p50_seconds,
        daily_runs.duration_p95_seconds,
        daily_runs.duration_max_seconds,
        {{ current_load_watermark('bigint') }} as _load_watermark
    from days
    left join daily_runs
        on
            days.pipeline_name = daily_runs.pipeline_name
            and days.run_date = daily_runs.run_date
)

select * from final
