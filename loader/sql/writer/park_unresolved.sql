-- After registration, an event whose run_key is still unknown had no
-- pipeline_name anywhere in its batch: it waits in raw.parked_events until an
-- event naming its run arrives.
update incoming_events
set is_parked = true
where rejection is null and registered_name is null
