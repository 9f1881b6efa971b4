-- New (run, stage) pairs get their integer id, in key order like the runs.
insert into raw.stages (pipeline_id, stage_name)
select distinct
    incoming.pipeline_id,
    incoming.stage_name
from incoming_events as incoming
where
    incoming.rejection is null
    and not incoming.is_parked
    and incoming.stage_name is not null
    and not exists (
        select from raw.stages
        where
            stages.pipeline_id = incoming.pipeline_id
            and stages.stage_name = incoming.stage_name
    )
order by incoming.pipeline_id, incoming.stage_name
on conflict (pipeline_id, stage_name) do nothing
