update incoming_events as incoming
set stage_id = registered_stages.stage_id
from raw.stages as registered_stages
where
    incoming.rejection is null
    and not incoming.is_parked
    and registered_stages.pipeline_id = incoming.pipeline_id
    and registered_stages.stage_name = incoming.stage_name
