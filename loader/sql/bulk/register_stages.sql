-- Every (run, stage) pair of a clean batch with its id: new pairs registered
-- in key order, like the full path, and the pairs registered before. A pair a
-- concurrent batch registered after this statement's snapshot is missing from
-- both halves: the writer then sends the batch down the full path.
with

wanted as (
    select distinct
        pairs.pipeline_id,
        pairs.stage_name
    from unnest(
        %(pipeline_ids)s::bigint[], %(stage_names)s::text[]
    ) as pairs (pipeline_id, stage_name)
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
