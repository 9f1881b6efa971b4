-- Every (run, stage) pair of a clean batch with its id: new pairs registered
-- in key order, like the full path, and the pairs registered before. A pair a
-- concurrent batch registered after this statement's snapshot is missing from
-- both halves: the writer then sends the batch down the full path. The pairs
-- come as one JSON array of [pipeline_id, stage_name].
with

wanted as (
    select distinct
        (given.pair ->> 0)::bigint as pipeline_id,
        given.pair ->> 1 as stage_name
    from json_array_elements(%(pairs)s::json) as given (pair)
),

registered as (
    insert into raw.stages (pipeline_id, stage_name)
    select
        wanted.pipeline_id,
        wanted.stage_name
    from wanted
    where
        not exists (
            select from raw.stages
            where
                stages.pipeline_id = wanted.pipeline_id
                and stages.stage_name = wanted.stage_name
        )
    order by wanted.pipeline_id, wanted.stage_name
    on conflict (pipeline_id, stage_name) do nothing
    returning pipeline_id, stage_name, stage_id
)

select
    registered.pipeline_id,
    registered.stage_name,
    registered.stage_id
from registered
union all
select
    known.pipeline_id,
    known.stage_name,
    known.stage_id
from raw.stages as known
inner join wanted
    on
        known.pipeline_id = wanted.pipeline_id
        and known.stage_name = wanted.stage_name
