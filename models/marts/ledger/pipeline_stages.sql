{{ config(
    unique_key='id',
    indexes=[
        {'columns': ['id'], 'unique': True},
        {'columns': ['pipeline_id']},
        {'columns': ['_load_watermark']},
    ],
) }}

with

stage_events as (
    select * from {{ ref('stg_raw__run_events') }}
    where
        stage_id is not null
        {% if is_incremental() %}
            {# The pipeline_id filter adds nothing logically: it lets the
                planner reach the stages' events through the pipeline_id
                index (raw has no stage_id index, to keep loads fast). #}
            and pipeline_id in (
                select new_events.pipeline_id
                from {{ ref('stg_raw__run_events') }} as new_events
                where new_events.load_xid >= {{ previous_load_watermark() }}
            )
            and stage_id in (
                select new_events.stage_id
                from {{ ref('stg_raw__run_events') }} as new_events
                where new_events.load_xid >= {{ previous_load_watermark() }}
            )
        {% endif %}
),

stages as (
    select * from {{ ref('stg_raw__stages') }}
),

stage_attempts as (
    select
        stage_id,
        max(attempt) as attempts,
        min(event_time) filter (where status = 'running') as started_at,
        max(event_time) as last_event_at
    from stage_events
    group by stage_id
),

final_attempt_events_ordered as (
    select
        stage_events.stage_id,
        stage_events.status,
        stage_events.event_time,
        stage_events.records_processed,
        stage_events.error_message,
        {{ event_order('stage_events.stage_id') }} as event_order
    from stage_events
    inner join stage_attempts
        on
            stage_events.stage_id = stage_attempts.stage_id
            and stage_events.attempt = stage_attempts.attempts
),

final_terminal_events as (
    select distinct on (stage_id)
        stage_id,
        status,
        event_time,
        records_processed,
        error_message,
        event_order
    from final_attempt_events_ordered
    where {{ is_terminal('status') }}
    order by stage_id, event_order
),

final_attempt_summaries as (
    select
        events.stage_id,
        bool_or(events.status = 'running') as has_running_event,
        max(events.records_processed) filter (
            where
            terminal.event_order is null
            or events.event_order <= terminal.event_order
        ) as records_until_final_event
    from final_attempt_events_ordered as events
    left join final_terminal_events as terminal
        on events.stage_id = terminal.stage_id
    group by events.stage_id
),

final as (
    select
        stages.stage_id as id,
        stages.pipeline_id,
        stages.stage_name,
        case
            when final_terminal_events.status is not null
                then final_terminal_events.status
            when final_attempt_summaries.has_running_event then 'running'
            else 'pending'
        end as status,
        case
            when final_terminal_events.status = 'failed'
                then final_terminal_events.error_message
        end as error_message,
        coalesce(
            final_terminal_events.records_processed,
            final_attempt_summaries.records_until_final_event
        ) as records_processed,
        stage_attempts.started_at,
        final_terminal_events.event_time as completed_at,
        stage_attempts.attempts,
        stage_attempts.last_event_at,
        {{ current_load_watermark() }} as _load_watermark
    from stage_attempts
    inner join stages
        on stage_attempts.stage_id = stages.stage_id
    inner join final_attempt_summaries
        on stage_attempts.stage_id = final_attempt_summaries.stage_id
    left join final_terminal_events
        on stage_attempts.stage_id = final_terminal_events.stage_id
)

select * from final
