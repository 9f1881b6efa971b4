{{ config(
    incremental_strategy='replace_partitions',
    unique_key=['pipeline_name', 'run_date'],
    placeholder_column='failures',
    indexes=[
        {'columns': ['pipeline_name', 'run_date']},
        {'columns': ['_load_watermark']},
    ],
) }}

with

{{ daily_mart_inputs({
    'runs': ref('fct_pipeline_runs'),
    'stage_runs': ref('fct_stage_runs'),
}) }},

{# A failed stage is the reason; a run that failed with no failed stage is
    its own (stage_name null). An aborted stage is no reason: it was stopped
    because of another failure. #}
failures as (
    select
        pipeline_id,
        pipeline_name,
        run_date,
        stage_name,
        error_message,
        completed_at
    from stage_runs
    where status = 'failed' and is_aborted is not true
    union all
    select
        pipeline_id,
        pipeline_name,
        run_date,
        null as stage_name,
        error_message,
        completed_at
    from runs
    where status = 'failed' and failed_stage_count = 0
),

signed_failures as (
    select
        *,
        {{ error_signature('error_message') }} as error_signature
    from failures
),

daily_reasons as (
    select
        pipeline_name,
        run_date,
        stage_name,
        error_signature,
        count(*) as failures,
        count(distinct pipeline_id) as runs_affected,
        {# The latest; ties (runs that failed at the same moment) by the
            later run, then by message: the same sample in every build. #}
        (array_agg(
            error_message
            order by
                completed_at desc,
                pipeline_id desc,
                error_message collate "C" desc
        ))[1] as sample_error_message,
        min(completed_at) as first_seen_at,
        max(completed_at) as last_seen_at
    from signed_failures
    group by pipeline_name, run_date, stage_name, error_signature
),

{# A day left without failures still gets a row: the placeholder that clears
    it. #}
days as (
    {{ daily_mart_days('daily_reasons') }}
),

final as (
    select
        days.pipeline_name,
        days.run_date,
        daily_reasons.stage_name,
        daily_reasons.error_signature,
        daily_reasons.failures::integer as failures,
        daily_reasons.runs_affected::integer as runs_affected,
        daily_reasons.sample_error_message,
        daily_reasons.first_seen_at,
        daily_reasons.last_seen_at,
        {{ current_load_watermark('bigint') }} as _load_watermark
    from days
    left join daily_reasons
        on
            days.pipeline_name = daily_reasons.pipeline_name
            and days.run_date = daily_reasons.run_date
)

select * from final
