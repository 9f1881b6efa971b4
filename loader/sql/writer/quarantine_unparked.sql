-- Parked events that joined this batch and were rejected now (their run was
-- pruned meanwhile) are quarantined here: their bytes are in the table.
insert into raw.quarantined_events (origin, line_number, reason, raw_line)
select
    incoming.origin,
    incoming.line_number,
    incoming.rejection,
    incoming.raw_line
from incoming_events as incoming
where incoming.position < 0 and incoming.rejection is not null
order by incoming.position desc
