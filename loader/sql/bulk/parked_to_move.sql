-- Whether parked events wait that the full path would move into this batch:
-- events of one of its runs, or of a run registered since they were parked.
select exists(
    select from raw.parked_events as parked
    where
        parked.run_key in (
            select json_array_elements_text(%(run_keys)s::json)
        )
        or exists (
            select from raw.runs
            where runs.run_key = parked.run_key
        )
) as has_parked_to_move
