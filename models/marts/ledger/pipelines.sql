{{ config(
    unique_key='id',
    pre_hook="{{ delete_absorbed_runs('id') }}",
    indexes=[
        {'columns': ['id'], 'unique': True},
        {'columns': ['_load_watermark']},
    ],
) }}

with

{% if is_incremental() %}
    {# A run is re-derived when it has new events, and also when its stages
        were re-derived after this table's last build: a load that committed
        between the two models' snapshots reached pipeline_stages only in a
        later build. Not materialized: each reader plans it as a semi-join
        that reaches its rows through the pipeline_id indexes. #}
    changed_runs as not materialized (
        select new_events.pipeline_id
        from {{ ref('int_run_events__homed') }} as new_events
        where {{ loaded_since_previous_build('new_events.load_xid') }}
        union
        select newly_absorbed.home_pipeline_id
        from {{ ref('int_openlineage__absorbed_runs') }} as newly_absorbed
        where
            {{ loaded_since_previous_build('newly_absorbed._load_watermark') }}
        union
        select rebuilt_stages.pipeline_id
        from {{ ref('pipeline_stages') }} as rebuilt_stages
        where
            {{ loaded_since_previous_build('rebuilt_stages._load_watermark') }}
    ),
{% endif %}

run_events as (
    select * from {{ ref('int_run_events__homed') }}
    {% if is_incremental() %}
        where {{ recorded_in_changed_runs('recorded_pipeline_id') }}
    {% endif %}
),

runs as (
    select * from {{ ref('stg_raw__runs') }}
),

pipeline_stages as (
    select * from {{ ref('pipeline_stages') }}
    {% if is_incremental() %}
        where {{ in_changed_runs('pipeline_id') }}
    {% endif %}
),

{# Rule 2's times span every attempt of the run; attempts is its highest
    run_attempt, stage events included. #}
run_summaries as (
    select
        pipeline_id,
        min(event_time) as created_at,
        max(event_time) as last_event_at,
        max(run_attempt) as attempts
    from run_events
    group by pipeline_id
),

{# Only the highest run attempt decides the status, completed_at, records
    and error: a flow retried under the same run key re-opens its run. #}
latest_attempt_events as (
    select
        run_events.pipeline_id,
        run_events.stage_id,
        run_events.event_id,
        run_events.status,
        run_events.event_time,
        run_events.records_processed,
        run_events.error_message,
        run_events.is_aborted
    from run_events
    inner join run_summaries
        on
            run_events.pipeline_id = run_summaries.pipeline_id
            and run_events.run_attempt = run_summaries.attempts
),

latest_attempt_activity as (
    select
        pipeline_id,
        bool_or(stage_id is null and status = 'running') as has_running_event,
        bool_or(stage_id is not null and status != 'pending')
            as has_active_stage_event
    from latest_attempt_events
    group by pipeline_id
),

run_level_events_ordered as (
    select
        pipeline_id,
        status,
        event_time,
        records_processed,
        error_message,
        is_aborted,
        {{ event_order('pipeline_id') }} as event_order
    from latest_attempt_events
    where stage_id is null
),

final_terminal_events as (
    select distinct on (pipeline_id)
        pipeline_id,
        status,
        event_time,
        records_processed,
        error_message,
        is_aborted
    from run_level_events_ordered
    where {{ is_terminal('status') }}
    order by pipeline_id, event_order
),

{# Rules 3 and 4 fall back on stages only of the run's highest attempt: a
    stage whose deciding events belong to an earlier run attempt was not
    part of the attempt that decided the run. #}
latest_attempt_stages as (
    select pipeline_stages.*
    from pipeline_stages
    inner join run_summaries
        on
            pipeline_stages.pipeline_id = run_summaries.pipeline_id
            and pipeline_stages.run_attempt = run_summaries.attempts
),

{# Rule 3's fallback: the latest-completed stage that reported a count (a
    stage that reports none, such as a test, says nothing about records). #}
last_completed_stages as (
    select distinct on (pipeline_id)
        pipeline_id,
        records_processed
    from latest_attempt_stages
    where completed_at is not null and records_processed is not null
    order by
        pipeline_id asc,
        completed_at desc,
        records_processed desc
),

{# An aborted stage was stopped because of another failure (a dbt node
    skipped after an upstream error): it is never the one to blame. #}
first_failed_stages as (
    select distinct on (pipeline_id)
        pipeline_id,
        stage_name || ': ' || error_message as error_message
    from latest_attempt_stages
    where status = 'failed' and is_aborted is not true
    order by pipeline_id, completed_at, stage_name collate "C"
),

final as (
    select
        run_summaries.pipeline_id as id,
        case
            when final_terminal_events.status is not null
                then final_terminal_events.status
            when
                latest_attempt_activity.has_running_event
                or latest_attempt_activity.has_active_stage_event
                then 'running'
            else 'pending'
        end as status,
        run_summaries.created_at,
        final_terminal_events.event_time as completed_at,
        case
            when final_terminal_events.records_processed is not null
                then final_terminal_events.records_processed
            when final_terminal_events.status = 'completed'
                then last_completed_stages.records_processed
        end as records_processed,
        case
            when final_terminal_events.status = 'failed'
                then coalesce(
                    final_terminal_events.error_message,
                    first_failed_stages.error_message
                )
        end as error_message,
        coalesce(final_terminal_events.is_aborted, false) as is_aborted,
        runs.pipeline_name,
        runs.run_key,
        run_summaries.last_event_at,
        run_summaries.attempts,
        {{ current_load_watermark() }} as _load_watermark
    from run_summaries
    inner join runs
        on run_summaries.pipeline_id = runs.pipeline_id
    inner join latest_attempt_activity
        on run_summaries.pipeline_id = latest_attempt_activity.pipeline_id
    left join final_terminal_events
        on run_summaries.pipeline_id = final_terminal_events.pipeline_id
    left join last_completed_stages
        on run_summaries.pipeline_id = last_completed_stages.pipeline_id
    left join first_failed_stages
        on run_summaries.pipeline_id = first_failed_stages.pipeline_id
)

select * from final
