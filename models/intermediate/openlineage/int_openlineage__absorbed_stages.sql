{#- The stages of runs absorbed as the same run under another key (an
    Airflow DAG run named by its OpenLineage runId): each becomes the home
    run's stage of the same name, when the home run has one. A view: a home
    run may gain that stage after the absorption was found. -#}
with

absorbed_runs as (
    select * from {{ ref('int_openlineage__absorbed_runs') }}
    where home_stage_id is null
),

stages as (
    select * from {{ ref('stg_raw__stages') }}
),

final as (
    select
        absorbed_stages.stage_id as absorbed_stage_id,
        home_stages.stage_id as home_stage_id
    from absorbed_runs
    inner join stages as absorbed_stages
        on absorbed_runs.absorbed_pipeline_id = absorbed_stages.pipeline_id
    inner join stages as home_stages
        on
            absorbed_runs.home_pipeline_id = home_stages.pipeline_id
            and absorbed_stages.stage_name = home_stages.stage_name
)

select * from final
