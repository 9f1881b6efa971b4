-- Lock the runs this batch names (and the runs with parked events, which this
-- batch may move), shared, until it commits: `ledger prune` takes the same
-- advisory locks exclusively while it decides whether a run is final and closes
-- it, so a batch either sees the run closed (and quarantines its late events)
-- or prune waits for the batch and then sees its events. The steps after this
-- one read the registry with a snapshot taken once the locks are held. In key
-- order, so that two lockers never wait for each other in a circle.
select
    pg_advisory_xact_lock_shared(
        %(run_lock_space)s, mod(named_runs.pipeline_id, 2147483647)::integer
    )
from (
    select runs.pipeline_id
    from raw.runs as runs
    where
        runs.run_key in (
            select incoming.run_key from incoming_events as incoming
            where incoming.run_key is not null
        )
        or runs.pipeline_id in (
            select incoming.pipeline_id from incoming_events as incoming
            where incoming.pipeline_id is not null
        )
        or runs.run_key in (
            select parked.run_key from raw.parked_events as parked
        )
    order by runs.pipeline_id
    offset 0
) as named_runs
