-- Runs before registration and again after it. An unresolved run_key is left
-- alone: it may be a new run (registered next) or one to park.
update incoming_events
set
    rejection = case
        when registered_name is null and run_key is null
            then 'pipeline_id: ' || pipeline_id || ' is not a known run id'
        when registered_name is null and pipeline_id is not null
            then
                'pipeline_id: ' || pipeline_id || ' does not match run_key '
                || quote_literal(run_key) || ', a new run'
        when pruned_at is not null
            then
                'pipeline_id: run ' || pipeline_id || ' was pruned at '
                || pruned_at || ', its history is closed'
        when pipeline_name != registered_name
            then
                'pipeline_name: '
                || quote_literal(pipeline_name)
                || ' differs from '
                || quote_literal(registered_name)
                || ', the name this run was registered with'
    end
where
    rejection is null
    -- Only the rows the case rejects: rewriting every row costs as much
    -- as inserting it.
    and (
        registered_name is null and (run_key is null or pipeline_id is not null)
        or pruned_at is not null
        or pipeline_name != registered_name
    )
