-- The resolved path's locks on its runs, as in lock_runs.sql: taken in the
-- same transaction before its insert, whose snapshot then sees a prune that
-- closed a run meanwhile. In key order, like every locker.
select
    pg_advisory_xact_lock_shared(
        %(run_lock_space)s, mod(runs.pipeline_id, 2147483647)::integer
    )
from raw.runs as runs
where
    runs.pipeline_id = any(%(pipeline_id)s::bigint[])
    or runs.run_key = any(%(run_key)s::text[])
order by runs.pipeline_id
