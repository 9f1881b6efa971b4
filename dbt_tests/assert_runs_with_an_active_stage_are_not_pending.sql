{#- Rule 1 of "Deriving a run", across the two tables: a stage that is
    running, completed or failed has a running or terminal event, so its run
    is at least running. A pending run with such a stage means the two tables
    disagree (for instance, pipelines was not rebuilt after its stages). -#}
with

pipelines as (
    select
        id,
        status
    from {{ ref('pipelines') }}
),

pipeline_stages as (
    select
        id,
        pipeline_id,
        stage_name,
        status
    from {{ ref('pipeline_stages') }}
),

pending_runs_with_active_stages as (
    select
        pipelines.id as pipeline_id,
        pipeline_stages.id as stage_id,
        pipeline_stages.stage_name,
        pipeline_stages.status as stage_status
    from pipelines
    inner join pipeline_stages
        on pipelines.id = pipeline_stages.pipeline_id
    where
        pipelines.status = 'pending'
        and pipeline_stages.status != 'pending'
)

select * from pending_runs_with_active_stages
