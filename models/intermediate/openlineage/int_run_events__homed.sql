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

stages as (
    select * from {{ ref('stg_raw__stages') }}
),

homed as (
    select
        events.event_id,
        events.pipeline_id as recorded_pipeline_id,
        coalesce(absorbed_runs.home_pipeline_id, events.pipeline_id)
            as pipeline_id,
        {# A correlated lookup, made only for the events of a run absorbed as
            the same run: reached through raw's (pipeline_id, stage_name) index
            whatever the planner guesses of the absorbed runs. #}
        case
            when absorbed_runs.home_stage_id is not null
                then absorbed_runs.home_stage_id
            when absorbed_runs.absorbed_pipeline_id is not null
                then coalesce(
                    (
                        select home_stages.stage_id
                        from stages as own_stages
                        inner join stages as home_stages
                            on own_stages.stage_name = home_stages.stage_name
                        where
                            own_stages.stage_id = events.stage_id
                            and home_stages.pipeline_id
                            = absorbed_runs.home_pipeline_id
                    ),
                    events.stage_id
                )
            else events.stage_id
        end as stage_id,
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
)

select * from homed
