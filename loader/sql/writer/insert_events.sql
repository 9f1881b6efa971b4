-- The first delivery of an event_id wins: the lowest position in this batch
-- (parked events first), and anything already stored before it. Returns how
-- many of the batch's own events and of the unparked ones landed.
with inserted as (
    insert into raw.run_events (
        event_id, pipeline_id, stage_id, status, event_time,
        records_processed, error_message, attempt, run_attempt, attributes
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
        incoming.run_attempt,
        incoming.attributes
    from incoming_events as incoming
    where incoming.rejection is null and not incoming.is_parked
    order by incoming.event_id asc, incoming.position asc
    on conflict (event_id) do nothing
    returning event_id
),

first_deliveries as (
    select
        incoming.event_id,
        min(incoming.position) as first_position
    from incoming_events as incoming
    where incoming.rejection is null and not incoming.is_parked
    group by incoming.event_id
)

select
    count(*) filter (where first_deliveries.first_position >= 0) as accepted,
    count(*) filter (where first_deliveries.first_position < 0) as unparked
from inserted
inner join first_deliveries
    on inserted.event_id = first_deliveries.event_id
