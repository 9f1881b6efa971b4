{{ config(
    incremental_strategy='replace_partitions',
    unique_key=['pipeline_name', 'run_date'],
    placeholder_column='stage_runs',
    indexes=[
        {'columns': ['pipeline_name', 'run_date']},
        {'columns': ['_load_watermark']},
    ],
) }}

with

{{ daily_mart_inputs({'stage_runs': ref('fct_stage_runs')}) }},

{# A day left without stages still gets a row: the placeholder that clears
    it. #}
days as (
    {{ daily_mart_days('stage_runs') }}
),

daily_stages as (
    select
        pipeline_name,
        run_date,
        stage_name,
        count(*) as stage_runs,
        count(*) filter (where status = 'completed') as stages_completed,
        count(*) filter (
            where status = 'failed' and is_aborted is not true
        ) as stages_failed,
        count(*) filter (where is_aborted) as stages_aborted,
        count(*) filter (where completed_at is null) as stages_open,
        sum(retries) as retries,
        sum(records_processed) as records_processed,
        {{ completed_duration_columns() }}
    from stage_runs
    group by pipeline_name, run_date, stage_name
),

final as (
    select
        days.pipeline_name,
        days.run_date,
        daily_stages.stage_name,
        daily_stages.stage_runs::integer as stage_runs,
        daily_stages.stages_completed::integer as stages_completed,
        daily_stages.stages_failed::integer as stages_failed,
        daily_stages.stages_aborted::integer as stages_aborted,
        daily_stages.stages_open::integer as stages_open,
        {{ success_rate(
            'daily_stages.stages_completed',
            'daily_stages.stages_failed + daily_stages.stages_aborted'
        ) }} as success_rate,
        daily_stages.retries::integer as retries,
        daily_stages.records_processed::bigint as records_processed,
        daily_stages.duration_p50_seconds,
        daily_stages.duration_p95_seconds,
        daily_stages.duration_max_seconds,
        {{ current_load_watermark('bigint') }} as _load_watermark
    from days
    left join daily_stages
        on
            days.pipeline_name = daily_stages.pipeline_name
            and days.run_date = daily_stages.run_date
)

select * from final
