{#- The pipeline names that have runs, one row each: what dim_pipelines joins
    the catalog with. Incremental, so that a build reads the runs derived since
    the last one instead of every run: a run's name is fixed when the run is
    registered, and runs are never deleted (prune closes them), so a name once
    recorded stays. -#}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='pipeline_name',
    indexes=[
        {'columns': ['pipeline_name'], 'unique': True},
        {'columns': ['_load_watermark']},
    ],
) }}

with

runs as (
    select pipeline_name from {{ ref('pipelines') }}
    {% if is_incremental() %}
        where {{ loaded_since_previous_build('_load_watermark') }}
    {% endif %}
),

final as (
    select distinct
        pipeline_name,
        {{ current_load_watermark() }} as _load_watermark
    from runs
)

select * from final
