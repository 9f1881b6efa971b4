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

final as (
    select distinct on (source_run_id)
        source_run_id,
        {# The runId as raw.runs spells a run key (the loader's canonical
            form), for the join that finds absorbed runs. #}
        source_run_id::text as run_key,
        pipeline_id,
        stage_id,
        placement,
        {{ current_load_watermark() }} as _load_watermark
    from candidates
    order by source_run_id, pipeline_id, stage_id nulls first
)

select * from final
