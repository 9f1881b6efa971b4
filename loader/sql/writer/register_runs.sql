-- Register new runs from the events that passed the checks; the lowest
-- position naming a run_key decides its pipeline_name. Ordered by key so that
-- concurrent batches lock registry rows in the same order; known keys are
-- filtered out first so that the identity sequence is not spent on them.
insert into raw.runs (run_key, pipeline_name)
select
    named_runs.run_key,
    named_runs.pipeline_name
from (
    select distinct on (incoming.run_key)
        incoming.run_key,
        incoming.pipeline_name
    from incoming_events as incoming
    where
        incoming.rejection is null
        and incoming.registered_name is null
        and incoming.run_key is not null
        and incoming.pipeline_name is not null
    order by incoming.run_key asc, incoming.position asc
) as named_runs
where
    not exists (
        select from raw.runs
        where runs.run_key = named_runs.run_key
    )
order by named_runs.run_key
on conflict (run_key) do nothing
