-- Which of a batch's event ids are stored already: a redelivery goes down the
-- full path, which counts it as a duplicate.
select run_events.event_id
from raw.run_events as run_events
where run_events.event_id = any(%(event_ids)s::uuid[])
