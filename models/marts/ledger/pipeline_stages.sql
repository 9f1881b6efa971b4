{{ config(
    unique_key='id',
    indexes=[
        {'columns': ['id'], 'unique': True},
        {'columns': ['pipeline_id']},
        {'columns': ['_load_watermark']},
    ],
) }}

with

{% if is_incremental() %}
    {# Every stage of a run with new events is re-derived: a stage's events
        are reached through raw's pipeline_id index (raw has no stage_id
        index, to keep loads fast), and re-deriving a stage is idempotent. #}
    changed_runs as not materialized (
        select new_events.pipeline_id
        from {{ ref('stg_raw__run_events') }} as new_events
        where {{ loaded_since_previous_build('new_events.load_xid') }}
    ),
{% endif %}

stage_events as (
    select * from {{ ref('stg_raw__run_events') }}
    where
        stage_id is not null
        {% if is_incremental() %}
            and {{ in_changed_runs('pipeline_id') }}
        {% endif %}
),

stages as (
    select * from {{ ref('stg_raw__stages') }}
    {% if is_incremental() %}
        where {{ in_changed_runs('pipeline_id') }}
    {% endif %}
),

{# Window functions only, no self-joins: an incremental build reads a few
    stages' events, and joins between such small sets are planned as nested
    loops that grow with the square of what a late backfill touches. #}
{# Rule 1: the highest (run_attempt, attempt) pair decides; arrays compare
    element by element, so max() finds it in one window. A retried flow's
    tasks count their tries from 1 again: attempt alone would let a try 2 of
    run attempt 1 outrank the retried flow's try 1. #}
events_in_stage as (
    select
        stage_id,
        event_id,
        run_attempt,
        attempt,
        status,
        event_time,
        records_processed,
        error_message,
        max(array[run_attempt, attempt]) over whole_stage as deciding_pair,
        min(event_time) filter (where status = 'running') over whole_stage
            as started_at,
        max(event_time) over whole_stage as last_event_at
    from stage_events
    window whole_stage as (partition by stage_id)
),

{# Only the deciding pair's events count; records_until_here is the
    largest count reported up to each event, in rule 2's order (rule 4). #}
final_attempt_events as (
    select
        *,
        {{ is_terminal('status') }} as is_terminal,
        row_number() over in_order as event_order,
        bool_or(status = 'running') over (partition by stage_id)
            as has_running_event,
        max(records_processed) over (
            in_order rows between unbounded preceding and current row
        ) as records_until_here
    from events_in_stage
    where array[run_attempt, attempt] = deciding_pair
    window in_order as ({{ event_order_window('stage_id') }})
),

{# The event that decides each stage: its first terminal event, else its
    last event. #}
deciding_events as (
    select distinct on (stage_id) *
    from final_attempt_events
    order by
        stage_id asc,
        is_terminal desc,
        case when is_terminal then event_order else -event_order end asc
),

final as (
    select
        stages.stage_id as id,
        stages.pipeline_id,
        stages.stage_name,
        case
            when deciding_events.is_terminal then deciding_events.status
            when deciding_events.has_running_event then 'running'
            else 'pending'
        end as status,
        case
            when
                deciding_events.is_terminal
                and deciding_events.status = 'failed'
                then deciding_events.error_message
        end as error_message,
        case
            when deciding_events.is_terminal
                then
                    coalesce(
                        deciding_events.records_processed,
                        deciding_events.records_until_here
                    )
            else deciding_events.records_until_here
        end as records_processed,
        deciding_events.started_at,
        case
            when deciding_events.is_terminal then deciding_events.event_time
        end as completed_at,
        deciding_events.attempt as attempts,
        deciding_events.run_attempt,
        deciding_events.last_event_at,
        {{ current_load_watermark() }} as _load_watermark
    from deciding_events
    inner join stages
        on deciding_events.stage_id = stages.stage_id
)

select * from final
