{#- Every run and stage that has an event has its row: each pipeline_id in
    stg_raw__run_events is in pipelines, each stage_id in pipeline_stages.
    Only events loaded before the table's last build count (load_xid below
    its largest _load_watermark): an event committed while or after dbt ran
    is the next build's, not a missing row. An empty table has no
    watermark: then every event committed before this test counts.
    Activity (deeper than a stage) may belong to another stage of its run
    than the one it was recorded under: only its run must have a row. -#}
with

run_events as (
    select
        pipeline_id,
        stage_id,
        placement,
        load_xid
    from {{ ref('stg_raw__run_events') }}
),

pipelines as (
    select
        id,
        _load_watermark
    from {{ ref('pipelines') }}
),

pipeline_stages as (
    select
        id,
        _load_watermark
    from {{ ref('pipeline_stages') }}
),

runs_missing_from_pipelines as (
    select distinct
        'pipelines' as missing_from,
        run_events.pipeline_id,
        cast(null as bigint) as stage_id
    from run_events
    where
        run_events.load_xid < (
            select
                coalesce(
                    max(pipelines._load_watermark),
                    {{ current_load_watermark() }}
                )
            from pipelines
        )
        and not exists (
            select 1
            from pipelines
            where pipelines.id = run_events.pipeline_id
        )
),

stages_missing_from_pipeline_stages as (
    select distinct
        'pipeline_stages' as missing_from,
        run_events.pipeline_id,
        run_events.stage_id
    from run_events
    where
        run_events.stage_id is not null
        and run_events.placement is distinct from 'activity'
        and run_events.load_xid < (
            select
                coalesce(
                    max(pipeline_stages._load_watermark),
                    {{ current_load_watermark() }}
                )
            from pipeline_stages
        )
        and not exists (
            select 1
            from pipeline_stages
            where pipeline_stages.id = run_events.stage_id
        )
),

missing_rows as (
    select * from runs_missing_from_pipelines
    union all
    select * from stages_missing_from_pipeline_stages
)

select * from missing_rows
