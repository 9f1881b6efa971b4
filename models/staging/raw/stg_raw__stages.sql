with

source as (
    select * from {{ source('raw', 'stages') }}
),

renamed as (
    select
        stage_id,
        pipeline_id,
        stage_name,
        registered_at
    from source
)

select * from renamed
