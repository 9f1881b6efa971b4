-- The stages of runs this batch has just registered, with their ids. No other
-- transaction sees those runs yet, so none can have registered their stages:
-- no lookup, and a clash (which would mean otherwise) fails the batch into the
-- full path. In key order, like the full path. The pairs come as one JSON array
-- of [pipeline_id, stage_name].
with

pairs as (
    select
        (given.pair ->> 0)::bigint as pipeline_id,
        given.pair ->> 1 as stage_name
    from json_array_elements(%(pairs)s::json) as given (pair)
)

insert into raw.stages (pipeline_id, stage_name)
select
    pairs.pipeline_id,
    pairs.stage_name
from pairs
order by pairs.pipeline_id, pairs.stage_name
returning pipeline_id, stage_name, stage_id
