-- Lock the candidates, exclusively, in key order (the writer's order, so that
-- no two lockers wait in a circle), before finality is computed. A batch holds
-- the same advisory lock shared while it writes a run's events (writer/
-- lock_runs.sql): one that holds it now commits first, and the next
-- statement's snapshot sees its events; one that comes later waits, then sees
-- pruned_at and quarantines its late events.
select
    runs.pipeline_id,
    pg_advisory_xact_lock(
        %(run_lock_space)s, mod(runs.pipeline_id, 2147483647)::integer
    ) as is_locked
from raw.runs as runs
where
    runs.pipeline_id = any(%(candidates)s::bigint[])
    and runs.pruned_at is null
order by runs.pipeline_id
