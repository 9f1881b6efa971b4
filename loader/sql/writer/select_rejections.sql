select
    incoming.position,
    incoming.rejection
from incoming_events as incoming
where incoming.rejection is not null
