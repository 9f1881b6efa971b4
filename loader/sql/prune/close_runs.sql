-- Close the final runs and delete their raw events, with the caller's rights.
-- The list comes from tables dbt's owner may rewrite: a run is closed only if
-- raw itself holds its end (a run-level completed or failed event before the
-- cut-off), so those tables cannot send the events of a live run away.
-- Parameters render as bare names for the linter:
-- noqa: disable=RF02

with

closed_runs as (
    update raw.runs
    set pruned_at = now()
    where
        pipeline_id = any(%(final)s::bigint[])
        and pruned_at is null
        and exists (
            select from raw.run_events as ends
            where
                ends.pipeline_id = runs.pipeline_id
                and ends.stage_id is null
                and ends.status in ('completed', 'failed')
                and ends.event_time < %(before)s
        )
    returning pipeline_id
),

deleted_events as (
    delete from raw.run_events
    where pipeline_id in (select closed_runs.pipeline_id from closed_runs)
    returning pipeline_id
)

select
    (select count(*) from closed_runs) as runs,
    (select count(*) from deleted_events) as events
