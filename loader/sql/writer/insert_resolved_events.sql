-- Events of runs and stages already registered, in one statement: a job's call,
-- or a group of calls (the collector's group commit). The writer puts the
-- batch in front of it as the relation `incoming`. It inserts all of the
-- events or none: when one needs the full path (a new run or stage, a name
-- that differs, a pruned run, an event_id already stored), nothing is inserted
-- and the full path decides the whole batch, so a batch still lands whole.
-- raw.lock_open_run takes each run's shared lock against `ledger prune` and
-- reads its prune mark after it (see create_raw_schema.sql): one statement.
with

-- Materialized: the runs' locks below are taken for the batch's runs only. Left
-- in one query, the planner may hash the whole registry and call the lock on
-- every run in it (it did for a group of 14 events: 100 runs locked, 0.36 ms).
matched as materialized (
    select
        incoming.event_id,
        incoming.position,
        runs.pipeline_id,
        stages.stage_id,
        incoming.status,
        incoming.event_time,
        incoming.records_processed,
        incoming.error_message,
        incoming.attempt,
        incoming.run_attempt,
        incoming.attributes
    from incoming
    inner join raw.runs
        on
            runs.pipeline_id = coalesce(
                incoming.pipeline_id,
                (
                    select by_key.pipeline_id from raw.runs as by_key
                    where by_key.run_key = incoming.run_key
                )
            )
    left join raw.stages
        on
            runs.pipeline_id = stages.pipeline_id
            and incoming.stage_name = stages.stage_name
    where
        (incoming.run_key is null or runs.run_key = incoming.run_key)
        and (
            incoming.pipeline_name is null
            or runs.pipeline_name = incoming.pipeline_name
        )
        and (incoming.stage_name is null) = (stages.stage_id is null)
),

resolved as (
    select distinct on (matched.event_id)
        matched.event_id,
        matched.pipeline_id,
        matched.stage_id,
        matched.status,
        matched.event_time,
        matched.records_processed,
        matched.error_message,
        matched.attempt,
        matched.run_attempt,
        matched.attributes
    from matched
    where
        raw.lock_open_run(
            matched.pipeline_id, %(run_lock_space)s  -- noqa: RF02
        )
        and not exists (
            select from raw.run_events as already_stored
            where already_stored.event_id = matched.event_id
        )
    order by matched.event_id asc, matched.position asc
),

batch_resolved as (
    select
        (select count(*) from resolved)
        = (select count(distinct incoming.event_id) from incoming)
            as is_whole
)

insert into raw.run_events (
    event_id, pipeline_id, stage_id, status, event_time,
    records_processed, error_message, attempt, run_attempt, attributes
)
select
    resolved.event_id,
    resolved.pipeline_id,
    resolved.stage_id,
    resolved.status,
    resolved.event_time,
    resolved.records_processed,
    resolved.error_message,
    resolved.attempt,
    resolved.run_attempt,
    resolved.attributes
from resolved
cross join batch_resolved
where batch_resolved.is_whole
on conflict (event_id) do nothing
