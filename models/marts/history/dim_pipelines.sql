{#- A table, rebuilt whole: the catalog and the pipeline names are small. -#}
{{ config(materialized='table') }}

with

catalog as (
    select * from {{ ref('pipeline_catalog') }}
),

recorded_pipelines as (
    select distinct pipeline_name
    from {{ ref('stg_raw__runs') }}
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
