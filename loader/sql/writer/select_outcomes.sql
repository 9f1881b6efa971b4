-- The batch's own events that did not land: rejected, or parked.
select
    incoming.position,
    incoming.rejection,
    incoming.is_parked
from incoming_events as incoming
where
    incoming.position >= 0
    and (incoming.rejection is not null or incoming.is_parked)
