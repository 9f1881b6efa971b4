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

{# Each run's facts gathered by one aggregation, not by joins: after a small
    load the planner expects a run or two, and joined each of these relations
    by a nested loop that re-ran it for every run (4 s for 2,572 runs on a
    1M-event history). Each relation has at most one row per run and gives
    the facts it knows; the others are null. #}
run_facts as (
    select
        pipeline_id,
        created_at,
        last_event_at,
        attempts,
        null::boolean as has_running_event,
        null::boolean as has_active_stage_event,
        null::text as terminal_status,
        null::timestamptz as terminal_event_time,
        null::bigint as terminal_records_processed,
        null::text as terminal_error_message,
        null::boolean as terminal_is_aborted,
        null::bigint as stage_records_processed,
        null::text as stage_error_message
    from run_summaries
    union all
    select
        pipeline_id,
        null::timestamptz as created_at,
        null::timestamptz as last_event_at,
        null::integer as attempts,
        has_running_event,
        has_active_stage_event,
        null::text as terminal_status,
        null::timestamptz as terminal_event_time,
        null::bigint as terminal_records_processed,
        null::text as terminal_error_message,
        null::boolean as terminal_is_aborted,
        null::bigint as stage_records_processed,
        null::text as stage_error_message
    from latest_attempt_activity
    union all
    select
        pipeline_id,
        null::timestamptz as created_at,
        null::timestamptz as last_event_at,
        null::integer as attempts,
        null::boolean as has_running_event,
        null::boolean as has_active_stage_event,
        status as terminal_status,
        event_time as terminal_event_time,
        records_processed as terminal_records_processed,
        error_message as terminal_error_message,
        is_aborted as terminal_is_aborted,
        null::bigint as stage_records_processed,
        null::text as stage_error_message
    from final_terminal_events
    union all
    select
        pipeline_id,
        null::timestamptz as created_at,
        null::timestamptz as last_event_at,
        null::integer as attempts,
        null::boolean as has_running_event,
        null::boolean as has_active_stage_event,
        null::text as terminal_status,
        null::timestamptz as terminal_event_time,
        null::bigint as terminal_records_processed,
        null::text as terminal_error_message,
        null::boolean as terminal_is_aborted,
        records_processed as stage_records_processed,
        null::text as stage_error_message
    from last_completed_stages
    union all
    select
        pipeline_id,
        null::timestamptz as created_at,
        null::timestamptz as last_event_at,
        null::integer as attempts,
        null::boolean as has_running_event,
        null::boolean as has_active_stage_event,
        null::text as terminal_status,
        null::timestamptz as terminal_event_time,
        null::bigint as terminal_records_processed,
        null::text as terminal_error_message,
        null::boolean as terminal_is_aborted,
        null::bigint as stage_records_processed,
        error_message as stage_error_message
    from first_failed_stages
),

runs_facts as (
    select
        pipeline_id,
        min(created_at) as created_at,
        max(last_event_at) as last_event_at,
        max(attempts) as attempts,
        bool_or(has_running_event) as has_running_event,
        bool_or(has_active_stage_event) as has_active_stage_event,
        max(terminal_status) as terminal_status,
        max(terminal_event_time) as terminal_event_time,
        max(terminal_records_processed) as terminal_records_processed,
        max(terminal_error_message) as terminal_error_message,
        bool_or(terminal_is_aborted) as terminal_is_aborted,
        max(stage_records_processed) as stage_records_processed,
        max(stage_error_message) as stage_error_message
    from run_facts
    group by pipeline_id
),

final as (
    select
        runs_facts.pipeline_id as id,
        case
            when runs_facts.terminal_status is not null
                then runs_facts.terminal_status
            when
                runs_facts.has_running_event
                or runs_facts.has_active_stage_event
                then 'running'
            else 'pending'
        end as status,
        runs_facts.created_at,
        runs_facts.terminal_event_time as completed_at,
        case
            when runs_facts.terminal_records_processed is not null
                then runs_facts.terminal_records_processed
            when runs_facts.terminal_status = 'completed'
                then runs_facts.stage_records_processed
        end as records_processed,
        case
            when runs_facts.terminal_status = 'failed'
                then coalesce(
                    runs_facts.terminal_error_message,
                    runs_facts.stage_error_message
                )
        end as error_message,
        coalesce(runs_facts.terminal_is_aborted, false) as is_aborted,
        runs.pipeline_name,
        runs.run_key,
        runs_facts.last_event_at,
        runs_facts.attempts,
        {{ current_load_watermark() }} as _load_watermark
    from runs_facts
    inner join runs
        on runs_facts.pipeline_id = runs.pipeline_id
)

select * from final
