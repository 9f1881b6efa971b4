-- Events naming their run only by its integer id.
update incoming_events as incoming
set
    registered_name = runs.pipeline_name,
    pruned_at = runs.pruned_at
from raw.runs as runs
where incoming.run_key is null and runs.pipeline_id = incoming.pipeline_id
