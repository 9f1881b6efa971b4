{#- Duplicates are already gone: raw.run_events has event_id as primary key
    and the loader inserts with "on conflict do nothing", so the first
    delivery wins. A distinct-on here would stop the incremental models'
    run filters from reaching the index on pipeline_id. -#}
with

source as (
    select * from {{ source('raw', 'run_events') }}
),

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
        load_xid
    from source
)

select * from selected_columns
