-- Parked events whose run is registered now (by this batch, or by a batch that
-- raced the one that parked them) join this batch, before its own events: they
-- were delivered first, so their copy of an event_id wins.
with moved as (
    delete from raw.parked_events as parked
    using raw.runs as runs
    where parked.run_key = runs.run_key
    returning parked.*
)

insert into incoming_events (
    position, event_id, run_key, stage_name, status, event_time,
    records_processed, error_message, attempt, run_attempt, attributes,
    origin, line_number, raw_line
)
select
    -row_number() over (
        order by moved.parked_at desc, moved.event_id desc
    ) as parked_position,
    moved.event_id,
    moved.run_key,
    moved.stage_name,
    moved.status,
    moved.event_time,
    moved.records_processed,
    moved.error_message,
    moved.attempt,
    moved.run_attempt,
    moved.attributes,
    moved.origin,
    moved.line_number,
    moved.raw_line
from moved
