-- The first delivery of an event_id wins: the lowest position in this batch,
-- and anything already stored before it.
insert into raw.run_events (
    event_id, pipeline_id, stage_id, status, event_time,
    records_processed, error_message, attempt, attributes
)
select distinct on (incoming.event_id)
    incoming.event_id,
    incoming.pipeline_id,
    incoming.stage_id,
    incoming.status,
    incoming.event_time,
    incoming.records_processed,
    incoming.error_message,
    incoming.attempt,
    incoming.attributes
from incoming_events as incoming
where incoming.rejection is null
order by incoming.event_id asc, incoming.position asc
on conflict (event_id) do nothing
