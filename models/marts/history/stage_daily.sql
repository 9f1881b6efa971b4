-- depends_on: {{ ref('fct_pipeline_runs') }}
{{ config(
    materialized='incremental',
    incremental_strategy='replace_partitions',
    unique_key=['pipeline_name', 'run_date'],
    placeholder_column='stage_runs',
    on_schema_change='fail',
    indexes=[
        {'columns': ['pipeline_name', 'run_date']},
        {'columns': ['_load_watermark']},
    ],
) }}

with

{% if is_incremental() %}
    changed_days as (
        {{ changed_run_days(ref('fct_pipeline_runs')) }}
    ),
{% endif %}

stage_runs as (
    {% if is_incremental() %}
        {{ rows_on_changed_days(ref('fct_stage_runs')) }}
    {% else %}
        select * from {{ ref('fct_stage_runs') }}
    {% endif %}
),

{# A day left without stages still gets a row: the placeholder that clears
    it. #}
days as (
    {% if is_incremental() %}
        select * from changed_days
    {% else %}
        select distinct
            pipeline_name,
            run_date
        from stage_runs
    {% endif %}
),

daily_stages as (
    select
        pipeline_name,
        run_date,
        stage_name,
        count(*) as stage_runs,
        count(*) filter (where status = 'completed') as stages_completed,
        count(*) filter (where status = 'failed') as stages_failed,
        count(*) filter (where completed_at is null) as stages_open,
        sum(retries) as retries,
        sum(records_processed) as records_processed,
        percentile_cont(0.5) within group (order by duration_seconds)
        filter (where status = 'completed') as duration_p50_seconds,
        percentile_cont(0.95) within group (order by duration_seconds)
        filter (where status = 'completed') as duration_p95_seconds,
        max(duration_seconds) filter (
            where status = 'completed'
        ) as duration_max_seconds
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
        daily_stages.stages_open::integer as stages_open,
        {{ success_rate(
            'daily_stages.stages_completed', 'daily_stages.stages_failed'
        ) }} as success_rate,
        daily_stages.retries::integer as retries,
        daily_stages.records_processed::bigint as records_processed,
        daily_stages.duration_p50_seconds,
        daily_stages.duration_p95_seconds,
        daily_stages.duration_max_seconds,
        {{ current_load_watermark() }} as _load_watermark
    from days
    left join daily_stages
        on
            days.pipeline_name = daily_stages.pipeline_name
            and days.run_date = daily_stages.run_date
)

select * from final
