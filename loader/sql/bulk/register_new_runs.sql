-- New runs of a clean batch, each with the name the batch gives it, in key
-- order like the full path. A run a concurrent batch registered first is not
-- returned: the writer then sends the batch down the full path.
insert into raw.runs (run_key, pipeline_name)
select
    new_runs.run_key,
    new_runs.pipeline_name
from
    unnest(
        %(run_keys)s::text[], %(pipeline_names)s::text[]
    ) as new_runs (run_key, pipeline_name)
order by new_runs.run_key
on conflict (run_key) do nothing
returning run_key, pipeline_id
