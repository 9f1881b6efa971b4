-- Events naming their run by run_key take its id, registered name and prune
-- mark. Only events not yet resolved or rejected are touched, so this runs
-- again after new runs are registered.
update incoming_events as incoming
set
    registered_name = runs.pipeline_name,
    pruned_at = runs.pruned_at,
    rejection = case
        when incoming.pipeline_id != runs.pipeline_id
            then
                'pipeline_id: ' || incoming.pipeline_id
                || ' does not match run_key ' || quote_literal(incoming.run_key)
                || ', which has id ' || runs.pipeline_id
    end,
    pipeline_id = runs.pipeline_id
from raw.runs as runs
where
    incoming.registered_name is null
    and incoming.rejection is null
    and runs.run_key = incoming.run_key
