-- One event of a run and stage already registered, in one statement (a job's
-- usual call). It inserts nothing when anything needs the full path: a new run
-- or stage, a name that differs, or a duplicate event_id; the full path then
-- decides, in its own transaction.
-- Parameters render as bare names for the linter:
-- noqa: disable=RF02
insert into raw.run_events (
    event_id, pipeline_id, stage_id, status, event_time,
    records_processed, error_message, attempt, run_attempt, attributes
)
select
    %(event_id)s,
    runs.pipeline_id,
    stages.stage_id,
    %(status)s,
    %(event_time)s,
    %(records_processed)s,
    %(error_message)s,
    %(attempt)s,
    %(run_attempt)s,
    %(attributes)s::jsonb
from raw.runs
left join raw.stages
    on
        runs.pipeline_id = stages.pipeline_id
        and stages.stage_name = %(stage_name)s
where
    runs.pipeline_id = coalesce(
        %(pipeline_id)s::bigint,
        (
            select by_key.pipeline_id from raw.runs as by_key
            where by_key.run_key = %(run_key)s
        )
    )
    and (%(run_key)s::text is null or runs.run_key = %(run_key)s)
    and (
        %(pipeline_name)s::text is null
        or runs.pipeline_name = %(pipeline_name)s
    )
    and (%(stage_name)s::text is null) = (stages.stage_id is null)
    and runs.pruned_at is null
on conflict (event_id) do nothing
