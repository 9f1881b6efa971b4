-- Each run_key of the batch with its registered id, name and whether it is
-- pruned (nulls for a new run).
select
    named.run_key,
    runs.pipeline_id,
    runs.pipeline_name,
    runs.pruned_at is not null as is_pruned
from
    json_array_elements_text(
        %(run_keys)s::json  -- noqa: RF02
    ) as named (run_key)
left join raw.runs as runs
    on named.run_key = runs.run_key
