{#- A table, rebuilt whole: the catalog and the recorded pipeline names
    (kept incrementally) are small. -#}
{{ config(materialized='table') }}

with

catalog as (
    select * from {{ ref('pipeline_catalog') }}
),

recorded_pipelines as (
    select pipeline_name from {{ ref('int_pipelines__recorded_names') }}
),

final as (
    select
        coalesce(catalog.pipeline_name, recorded_pipelines.pipeline_name)
            as pipeline_name,
        coalesce(catalog.owner, {{ string_literal(var('default_owner')) }})
            as owner, -- noqa: RF04
        catalog.expected_stages,
        coalesce(
            catalog.stale_after_minutes,
            {{ var('default_stale_after_minutes') }}
        ) as stale_after_minutes,
        catalog.expected_schedule,
        catalog.pipeline_name is not null as is_cataloged,
        recorded_pipelines.pipeline_name is not null as has_runs
    from catalog
    full outer join recorded_pipelines
        on catalog.pipeline_name = recorded_pipelines.pipeline_name
)

select * from final
