-- New runs of a clean batch, each with the name the batch gives it, in key
-- order like the full path. A run a concurrent batch registered first is not
-- returned: the writer then sends the batch down the full path. The runs come
-- as one JSON array of [run_key, pipeline_name] pairs.
insert into raw.runs (run_key, pipeline_name)
select
    given.new_run ->> 0 as run_key,
    given.new_run ->> 1 as pipeline_name
from json_array_elements(%(runs)s::json) as given (new_run)
order by given.new_run ->> 0
on conflict (run_key) do nothing
returning run_key, pipeline_id
