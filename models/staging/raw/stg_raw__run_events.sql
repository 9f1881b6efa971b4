{#- Duplicates are already gone: raw.run_events has event_id as primary key
    and the loader inserts with "on conflict do nothing", so the first
    delivery wins. A distinct-on here would stop the incremental models'
    run filters from reaching the index on pipeline_id. -#}
with

source as (
    select * from {{ source('raw', 'run_events') }}
),

{# The OpenLineage columns come from what the loader wrote for a RunEvent:
    where it put the event and the whole event (attributes the loader
    refuses on a native event, so they can be trusted). #}
selected_columns as (
    select
        event_id,
        pipeline_id,
        stage_id,
        status,
        event_time,
        records_processed,
        error_message,
        attempt,
        run_attempt,
        attributes,
        loaded_at,
        load_xid,
        attributes ->> 'openlineage_placement' as placement,
        (attributes -> 'openlineage' -> 'run' ->> 'runId')::uuid
            as source_run_id,
        (attributes #>> '{openlineage,run,facets,parent,run,runId}')::uuid
            as source_parent_run_id,
        coalesce(
            attributes -> 'openlineage' ->> 'eventType' = 'ABORT', false
        ) as is_aborted
    from source
)

select * from selected_columns
