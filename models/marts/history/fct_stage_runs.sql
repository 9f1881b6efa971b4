-- depends_on: {{ ref('int_openlineage__absorbed_runs') }}
{# delete+insert by run, as pipeline_stages: a rebuilt run's stages replace
    all of its old ones. #}
{{ config(
    incremental_strategy='delete+insert',
    unique_key='pipeline_id',
    pre_hook="{{ delete_absorbed_runs('pipeline_id') }}",
    indexes=[
        {'columns': ['stage_id'], 'unique': True},
        {'columns': ['pipeline_id']},
        {'columns': ['pipeline_name', 'run_date']},
        {'columns': ['_load_watermark']},
    ],
) }}

with

{# The stages of every run fct_pipeline_runs rebuilt since this model's last
    build: a stage is re-derived only with its run, which also moves it to a
    new run_date when the run's created_at moves. #}
runs as (
    select * from {{ ref('fct_pipeline_runs') }}
    {% if is_incremental() %}
        where {{ loaded_since_previous_build('_load_watermark', 'bigint') }}
    {% endif %}
),

{% if is_incremental() %}
    {# Not materialized: its reader plans it on pipeline_stages' pipeline_id
        index. #}
    changed_runs as not materialized (
        select runs.pipeline_id from runs
    ),
{% endif %}

pipeline_stages as (
    select * from {{ ref('pipeline_stages') }}
    {% if is_incremental() %}
        where {{ in_changed_runs('pipeline_id') }}
    {% endif %}
),

{# Contract rule 3 lets a stage's first running event come after its
    completion; it then has no duration. #}
timed_stages as (
    select
        pipeline_stages.*,
        case
            when pipeline_stages.started_at <= pipeline_stages.completed_at
                then
                    date_part(
                        'epoch',
                        pipeline_stages.completed_at
                        - pipeline_stages.started_at
                    )
        end as duration_seconds
    from pipeline_stages
),

final as (
    select
        timed_stages.id as stage_id,
        timed_stages.pipeline_id,
        runs.pipeline_name,
        runs.run_date,
        timed_stages.stage_name,
        timed_stages.status,
        timed_stages.is_aborted,
        timed_stages.started_at,
        timed_stages.completed_at,
        timed_stages.duration_seconds,
        timed_stages.attempts,
        timed_stages.attempts - 1 as retries,
        timed_stages.records_processed,
        case
            when timed_stages.duration_seconds > 0
                then
                    timed_stages.records_processed
                    / timed_stages.duration_seconds
        end as records_per_second,
        timed_stages.error_message,
        {{ current_load_watermark('bigint') }} as _load_watermark
    from timed_stages
    inner join runs
        on timed_stages.pipeline_id = runs.pipeline_id
)

select * from final
