{{ config(
    incremental_strategy='delete+insert',
    unique_key='pipeline_id',
    pre_hook="{{ delete_absorbed_runs('pipeline_id') }}",
    indexes=[
        {'columns': ['pipeline_id'], 'unique': True},
        {'columns': ['pipeline_name', 'run_date']},
        {'columns': ['pipeline_name', 'created_at']},
        {'columns': ['pipeline_name', 'completed_at']},
        {'columns': ['completed_at']},
        {'columns': ['_load_watermark']},
        {'columns': ['_measured_watermark']},
    ],
) }}

with

{% if is_incremental() %}
    {# Rebuilt: runs that pipelines re-derived since this model's last build,
        and every run still open, whose staleness moves with the clock. Not
        materialized: each reader plans it as a semi-join on its index. #}
    changed_runs as not materialized (
        select rederived_runs.id as pipeline_id
        from {{ ref('pipelines') }} as rederived_runs
        where
            {{ loaded_since_previous_build('rederived_runs._load_watermark') }}
        union
        select open_runs.pipeline_id
        from {{ this }} as open_runs
        where open_runs.completed_at is null
    ),
{% endif %}

pipelines as (
    select * from {{ ref('pipelines') }}
    {% if is_incremental() %}
        where {{ in_changed_runs('id') }}
    {% endif %}
),

run_events as (
    select * from {{ ref('int_run_events__homed') }}
    {% if is_incremental() %}
        where {{ recorded_in_changed_runs('recorded_pipeline_id') }}
    {% endif %}
),

pipeline_stages as (
    select * from {{ ref('pipeline_stages') }}
    {% if is_incremental() %}
        where {{ in_changed_runs('pipeline_id') }}
    {% endif %}
),

dim_pipelines as (
    select * from {{ ref('dim_pipelines') }}
),

first_running_events as (
    select
        pipeline_id,
        min(event_time) as first_running_at
    from run_events
    where status = 'running'
    group by pipeline_id
),

stage_summaries as (
    select
        pipeline_id,
        count(*) as stage_count,
        count(*) filter (
            where status = 'failed' and is_aborted is not true
        ) as failed_stage_count,
        sum(attempts - 1) as retry_count
    from pipeline_stages
    group by pipeline_id
),

{# An aborted stage was stopped because of another failure: it is never
    the one to blame. Its error sits beside the run's own message, which an
    orchestrator may reduce to "task_failure". #}
first_failed_stages as (
    select distinct on (pipeline_id)
        pipeline_id,
        stage_name,
        error_message
    from pipeline_stages
    where status = 'failed' and is_aborted is not true
    order by pipeline_id, completed_at, stage_name collate "C"
),

{# A run starts with its first running event, of the run or of a stage; a
    heartbeat stamped after the run ended does not start it. #}
timed_runs as (
    select
        pipelines.*,
        case
            when
                pipelines.completed_at is null
                or first_running_events.first_running_at
                <= pipelines.completed_at
                then first_running_events.first_running_at
        end as started_at
    from pipelines
    left join first_running_events
        on pipelines.id = first_running_events.pipeline_id
),

derived_runs as (
    select
        timed_runs.id as pipeline_id,
        timed_runs.run_key,
        timed_runs.pipeline_name,
        dim_pipelines.owner,
        timed_runs.status,
        timed_runs.created_at,
        timed_runs.started_at,
        timed_runs.completed_at,
        {{ utc_date('timed_runs.created_at') }} as run_date,
        date_part(
            'epoch',
            timed_runs.completed_at
            - coalesce(timed_runs.started_at, timed_runs.created_at)
        ) as duration_seconds,
        date_part(
            'epoch', timed_runs.started_at - timed_runs.created_at
        ) as queued_seconds,
        timed_runs.records_processed,
        timed_runs.error_message,
        timed_runs.is_aborted,
        coalesce(stage_summaries.stage_count, 0)::integer as stage_count,
        coalesce(stage_summaries.failed_stage_count, 0)::integer
            as failed_stage_count,
        first_failed_stages.stage_name as failed_stage_name,
        first_failed_stages.error_message as first_failed_stage_error,
        coalesce(stage_summaries.retry_count, 0)::integer as retry_count,
        timed_runs.last_event_at,
        coalesce(
            timed_runs.completed_at is null
            and timed_runs.last_event_at
            < {{ as_of() }}
            - make_interval(mins => dim_pipelines.stale_after_minutes),
            false
        ) as is_stale,
        {{ current_load_watermark('bigint') }} as _load_watermark
    from timed_runs
    inner join dim_pipelines
        on timed_runs.pipeline_name = dim_pipelines.pipeline_name
    left join stage_summaries
        on timed_runs.id = stage_summaries.pipeline_id
    left join first_failed_stages
        on timed_runs.id = first_failed_stages.pipeline_id
),

{# _measured_watermark moves only when what run_anomalies measures moved:
    a late heartbeat re-derives a finished run without changing anyone's
    baseline, and must not make run_anomalies rescore weeks of runs. #}
final as (
    select
        derived_runs.*,
        {% if is_incremental() %}
            case
                when
                    previous_runs.status = derived_runs.status
                    and previous_runs.created_at = derived_runs.created_at
                    and not (
                        previous_runs.records_processed
                        is distinct from derived_runs.records_processed
                    )
                    and not (
                        previous_runs.duration_seconds
                        is distinct from derived_runs.duration_seconds
                    )
                    then previous_runs._measured_watermark
                else derived_runs._load_watermark
            end as _measured_watermark
        {% else %}
            derived_runs._load_watermark as _measured_watermark
        {% endif %}
    from derived_runs
    {% if is_incremental() %}
        left join {{ this }} as previous_runs
            on derived_runs.pipeline_id = previous_runs.pipeline_id
    {% endif %}
)

select * from final
