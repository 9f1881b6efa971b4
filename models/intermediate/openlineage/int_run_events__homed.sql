{#- Every raw event, with the run and stage it belongs to once the tree is
    known (int_openlineage__absorbed_runs): pipeline_id, stage_id and
    placement are the home ones; recorded_pipeline_id is the run the loader
    recorded it under, which the incremental models filter on (raw's index).
    An event of an absorbed run keeps its stage when the home run is the same
    run under another key (matched by stage name, else its own stage id), and
    becomes activity of the home stage when the absorbed run was a stage. -#}
with

events as (
    select * from {{ ref('stg_raw__run_events') }}
),

absorbed_runs as (
    select * from {{ ref('int_openlineage__absorbed_runs') }}
),

absorbed_stages as (
    select * from {{ ref('int_openlineage__absorbed_stages') }}
),

homed as (
    select
        events.event_id,
        events.pipeline_id as recorded_pipeline_id,
        coalesce(absorbed_runs.home_pipeline_id, events.pipeline_id)
            as pipeline_id,
        coalesce(
            absorbed_runs.home_stage_id,
            absorbed_stages.home_stage_id,
            events.stage_id
        ) as stage_id,
        case
            when absorbed_runs.home_stage_id is not null then 'activity'
            else events.placement
        end as placement,
        events.status,
        events.event_time,
        events.records_processed,
        events.error_message,
        events.attempt,
        events.run_attempt,
        events.attributes,
        events.loaded_at,
        events.load_xid,
        events.source_run_id,
        events.source_parent_run_id,
        events.is_aborted
    from events
    left join absorbed_runs
        on events.pipeline_id = absorbed_runs.absorbed_pipeline_id
    left join absorbed_stages
        on events.stage_id = absorbed_stages.absorbed_stage_id
)

select * from homed
