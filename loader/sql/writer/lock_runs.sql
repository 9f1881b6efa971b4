-- Lock the registry rows of the runs this batch names, in key order, until it
-- commits: `ledger prune` marks a run pruned under an update lock, so a batch
-- either sees that mark (and quarantines its late events) or prune waits for
-- the batch and then sees its events. The steps after this one read the
-- registry with a snapshot taken once these locks are held.
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
order by runs.pipeline_id
for share
