{#- The daily marts add up to the tables they summarize, per pipeline: the
    runs of pipelines by outcome, the stages of pipeline_stages, and the
    failures (failed stages, plus failed runs with no failed stage; aborted
    stages are no failure of their own). An
    incremental build that missed or doubled a day shows here. -#}
with

pipelines as (
    select * from {{ ref('pipelines') }}
),

pipeline_stages as (
    select * from {{ ref('pipeline_stages') }}
),

runs_by_pipeline as (
    select
        pipeline_name,
        count(*) as runs,
        count(*) filter (where status = 'completed') as completed,
        count(*) filter (where status = 'failed') as failed,
        count(*) filter (where completed_at is null) as still_open
    from pipelines
    group by pipeline_name
),

daily_runs_by_pipeline as (
    select
        pipeline_name,
        sum(runs_started) as runs,
        sum(runs_completed) as completed,
        sum(runs_failed) as failed,
        sum(runs_open) as still_open
    from {{ ref('pipeline_daily') }}
    group by pipeline_name
),

stages_by_pipeline as (
    select
        pipelines.pipeline_name,
        count(*) as stage_count,
        count(*) filter (
            where
            pipeline_stages.status = 'failed'
            and not pipeline_stages.is_aborted
        ) as failed
    from pipeline_stages
    inner join pipelines
        on pipeline_stages.pipeline_id = pipelines.id
    group by pipelines.pipeline_name
),

daily_stages_by_pipeline as (
    select
        pipeline_name,
        sum(stage_runs) as stage_count
    from {{ ref('stage_daily') }}
    group by pipeline_name
),

failed_runs_without_failed_stage as (
    select
        pipeline_name,
        count(*) as failed
    from pipelines
    where
        status = 'failed'
        and not exists (
            select 1
            from pipeline_stages
            where
                pipeline_stages.pipeline_id = pipelines.id
                and pipeline_stages.status = 'failed'
                and not pipeline_stages.is_aborted
        )
    group by pipeline_name
),

failures_by_pipeline as (
    select
        pipeline_name,
        sum(failures) as failures
    from {{ ref('failure_reasons') }}
    group by pipeline_name
),

compared as (
    select
        runs_by_pipeline.pipeline_name,
        runs_by_pipeline.runs,
        daily_runs_by_pipeline.runs as daily_runs,
        runs_by_pipeline.completed,
        daily_runs_by_pipeline.completed as daily_completed,
        runs_by_pipeline.failed,
        daily_runs_by_pipeline.failed as daily_failed,
        runs_by_pipeline.still_open,
        daily_runs_by_pipeline.still_open as daily_open,
        coalesce(stages_by_pipeline.stage_count, 0) as stage_rows,
        coalesce(daily_stages_by_pipeline.stage_count, 0) as daily_stage_rows,
        coalesce(stages_by_pipeline.failed, 0)
        + coalesce(failed_runs_without_failed_stage.failed, 0) as failures,
        coalesce(failures_by_pipeline.failures, 0) as reasons_failures
    from runs_by_pipeline
    left join daily_runs_by_pipeline
        on runs_by_pipeline.pipeline_name = daily_runs_by_pipeline.pipeline_name
    left join stages_by_pipeline
        on runs_by_pipeline.pipeline_name = stages_by_pipeline.pipeline_name
    left join daily_stages_by_pipeline
        on
            runs_by_pipeline.pipeline_name
            = daily_stages_by_pipeline.pipeline_name
    left join failed_runs_without_failed_stage
        on
            runs_by_pipeline.pipeline_name
            = failed_runs_without_failed_stage.pipeline_name
    left join failures_by_pipeline
        on runs_by_pipeline.pipeline_name = failures_by_pipeline.pipeline_name
)

select * from compared
where
    daily_runs is distinct from runs
    or daily_completed is distinct from completed
    or daily_failed is distinct from failed
    or daily_open is distinct from still_open
    or daily_stage_rows != stage_rows
    or reasons_failures != failures
