-- The bulk path's first step: lock the registered runs a batch names, shared,
-- in key order, as the full path's lock_runs does, before anything reads
-- their prune mark (the next statement's snapshot is taken after the locks).
select
    pg_advisory_xact_lock_shared(
        %(run_lock_space)s, mod(named_runs.pipeline_id, 2147483647)::integer
    )
from (
    select runs.pipeline_id
    from raw.runs as runs
    where
        runs.run_key in (
            select json_array_elements_text(%(run_keys)s::json)
        )
    order by runs.pipeline_id
    offset 0
) as named_runs
