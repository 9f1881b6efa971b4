{#- Every OpenLineage runId the raw log holds events of, and where the loader
    recorded them: its run (pipeline_id), its stage (null for a run-level
    event) and how (placement). A runId that is also a run key in raw.runs
    is a run whose own events say where it really belongs (int_openlineage__
    absorbed_runs). One row per runId; should hostile events put one runId in
    several places, the lowest pipeline_id and stage_id win, whatever the
    arrival order. -#}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='source_run_id',
    indexes=[
        {'columns': ['source_run_id'], 'unique': True},
        {'columns': ['run_key'], 'unique': True},
        {'columns': ['_load_watermark']},
    ],
) }}

with

new_events as (
    select
        source_run_id,
        pipeline_id,
        stage_id,
        placement
    from {{ ref('stg_raw__run_events') }}
    where
        source_run_id is not null
        {% if is_incremental() %}
            and {{ loaded_since_previous_build('load_xid') }}
        {% endif %}
),

candidates as (
    select * from new_events
    {% if is_incremental() %}
        union all
        select
            built.source_run_id,
            built.pipeline_id,
            built.stage_id,
            built.placement
        from {{ this }} as built
        where
            built.source_run_id in (
                select new_events.source_run_id from new_events
            )
    {% endif %}
),

{# One row keeps the build's watermark when no RunEvent arrived: without it
    an empty table would send every build back to the first event. #}
watermark_row as (
    select
        cast('00000000-0000-0000-0000-000000000000' as uuid) as source_run_id,
        cast(null as bigint) as pipeline_id,
        cast(null as bigint) as stage_id,
        cast(null as text) as placement
),

final as (
    select distinct on (source_run_id)
        source_run_id,
        {# The runId as raw.runs spells a run key (the loader's canonical
            form), for the join that finds absorbed runs. #}
        case when pipeline_id is not null then cast(source_run_id as text) end
            as run_key,
        pipeline_id,
        stage_id,
        placement,
        {{ current_load_watermark() }} as _load_watermark
    from (
        select * from candidates
        union all
        select * from watermark_row
    ) as with_watermark
    order by source_run_id, pipeline_id, stage_id nulls first
)

select * from final
