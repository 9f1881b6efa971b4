-- The one-statement path's lock on its run, as in lock_runs.sql: taken in the
-- same transaction before the insert, whose snapshot then sees a prune that
-- closed the run meanwhile.
select
    pg_advisory_xact_lock_shared(
        %(run_lock_space)s, mod(runs.pipeline_id, 2147483647)::integer
    )
from raw.runs as runs
where
    runs.pipeline_id = %(pipeline_id)s::bigint
    or runs.run_key = %(run_key)s::text
order by runs.pipeline_id
