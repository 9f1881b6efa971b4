with

source as (
    select * from {{ source('raw', 'stages') }}
),

selected_columns as (
    select
        stage_id,
        pipeline_id,
        stage_name,
        registered_at
    from source
)

select * from selected_columns
