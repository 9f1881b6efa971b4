{# delete+insert by run: a rebuilt run's stages replace all of its old ones,
    so a stage whose events now belong to another stage of the run (activity
    re-homed once its parent's events arrived) disappears. #}
{{ config(
    unique_key='pipeline_id',
    pre_hook="{{ delete_absorbed_runs('pipeline_id') }}",
    indexes=[
        {'columns': ['id'], 'unique': True},
        {'columns': ['pipeline_id']},
        {'columns': ['_load_watermark']},
    ],
) }}

with recursive

{% if is_incremental() %}
    {# Every stage of a run with new events is re-derived: a stage's events
        are reached through raw's pipeline_id index (raw has no stage_id
        index, to keep loads fast), and re-deriving a stage is idempotent. #}
    changed_runs as not materialized (
        select new_events.pipeline_id
        from {{ ref('int_run_events__homed') }} as new_events
        where {{ loaded_since_previous_build('new_events.load_xid') }}
        union
        select newly_absorbed.home_pipeline_id
        from {{ ref('int_openlineage__absorbed_runs') }} as newly_absorbed
        where
            {{ loaded_since_previous_build('newly_absorbed._load_watermark') }}
    ),
{% endif %}

stage_events as (
    select * from {{ ref('int_run_events__homed') }}
    where
        stage_id is not null
        {% if is_incremental() %}
            and {{ recorded_in_changed_runs('recorded_pipeline_id') }}
        {% endif %}
),

{# Activity (an event deeper than a stage) is recorded under the stage its
    parent job names; when that parent is itself activity of this run (dbt's
    nodes under a dbt command that ran inside an Airflow task), it belongs to
    the stage of its topmost such ancestor. Followed from the tops down, at
    most 32 levels, so that parents that name each other end. #}
activity_runs as (
    select distinct
        pipeline_id,
        source_run_id,
        source_parent_run_id,
        stage_id
    from stage_events
    where placement = 'activity'
),

activity_homes (pipeline_id, source_run_id, stage_id, depth) as (
    select
        tops.pipeline_id,
        tops.source_run_id,
        tops.stage_id,
        0
    from activity_runs as tops
    where
        not exists (
            select 1
            from activity_runs as parents
            where
                parents.pipeline_id = tops.pipeline_id
                and parents.source_run_id = tops.source_parent_run_id
        )
    union all
    select
        children.pipeline_id,
        children.source_run_id,
        homes.stage_id,
        homes.depth + 1
    from activity_runs as children
    inner join activity_homes as homes
        on
            children.pipeline_id = homes.pipeline_id
            and children.source_parent_run_id = homes.source_run_id
    where homes.depth < 32
),

homed_activity as (
    select distinct on (pipeline_id, source_run_id)
        pipeline_id,
        source_run_id,
        stage_id
    from activity_homes
    order by pipeline_id, source_run_id, depth, stage_id
),

homed_stage_events as (
    select
        stage_events.*,
        coalesce(homed_activity.stage_id, stage_events.stage_id)
            as home_stage_id
    from stage_events
    left join homed_activity
        on
            stage_events.placement = 'activity'
            and stage_events.pipeline_id = homed_activity.pipeline_id
            and stage_events.source_run_id = homed_activity.source_run_id
),

{# Window functions only, no self-joins: an incremental build reads a few
    stages' events, and joins between such small sets are planned as nested
    loops that grow with the square of what a late backfill touches. #}
{# A producer that numbers no tries (an OpenLineage child job) reports each
    try as a new runId (attempt_run_id): its tries are numbered by when each
    runId began, ties by runId, so any arrival order gives the same numbers. #}
attempt_runs as (
    select
        pipeline_id,
        home_stage_id as stage_id,
        event_id,
        run_attempt,
        event_time,
        is_aborted,
        attempt,
        status,
        records_processed,
        error_message,
        placement = 'activity' as is_activity,
        case when placement = 'stage' then source_run_id end as attempt_run_id,
        min(event_time) over (
            partition by home_stage_id, placement = 'stage', source_run_id
        ) as attempt_started_at
    from homed_stage_events
),

{# Activity (an event deeper than the stage, e.g. a SQL statement of a dbt
    node) only shows that the stage is alive: it ranks below every attempt
    (attempt 0), so it decides a stage only when nothing else reported, and
    then as running. #}
numbered_events as (
    select
        pipeline_id,
        stage_id,
        event_id,
        run_attempt,
        event_time,
        is_aborted is true as is_aborted,
        case
            when is_activity is true then 0
            when attempt_run_id is null then attempt
            else dense_rank() over (
                partition by stage_id, run_attempt, attempt_run_id is null
                order by attempt_started_at, attempt_run_id
            )::integer
        end as attempt,
        case when is_activity is true then 'running' else status end as status,
        case
            when is_activity is not true then records_processed
        end as records_processed,
        case when is_activity is not true then error_message end
            as error_message
    from attempt_runs
),

{# Rule 1: the highest (run_attempt, attempt) pair decides; arrays compare
    element by element, so max() finds it in one window. A retried flow's
    tasks count their tries from 1 again: attempt alone would let a try 2 of
    run attempt 1 outrank the retried flow's try 1. #}
events_in_stage as (
    select
        pipeline_id,
        stage_id,
        event_id,
        run_attempt,
        attempt,
        status,
        event_time,
        records_processed,
        error_message,
        is_aborted,
        max(array[run_attempt, attempt]) over whole_stage as deciding_pair,
        min(event_time) filter (where status = 'running') over whole_stage
            as started_at,
        max(event_time) over whole_stage as last_event_at
    from numbered_events
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
        deciding_events.stage_id as id,
        deciding_events.pipeline_id,
        {# A lookup by primary key per stage: a join was planned as a nested
            loop over both sides (the planner expects a few stages). #}
        (
            select stage_names.stage_name
            from {{ ref('stg_raw__stages') }} as stage_names
            where stage_names.stage_id = deciding_events.stage_id
        ) as stage_name,
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
        {# A stage known only from its activity has had one attempt. #}
        greatest(deciding_events.attempt, 1) as attempts,
        deciding_events.run_attempt,
        deciding_events.is_terminal and deciding_events.is_aborted
            as is_aborted,
        deciding_events.last_event_at,
        {{ current_load_watermark() }} as _load_watermark
    from deciding_events
)

select * from final
