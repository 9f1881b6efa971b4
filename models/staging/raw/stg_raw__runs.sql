with

source as (
    select * from {{ source('raw', 'runs') }}
),

selected_columns as (
    select
        pipeline_id,
        run_key,
        pipeline_name,
        registered_at
    from source
)

select * from selected_columns
