insert into raw.parked_events (
    event_id, run_key, stage_name, status, event_time, records_processed,
    error_message, attempt, run_attempt, attributes, origin, line_number,
    raw_line
)
values (
    %(event_id)s, %(run_key)s, %(stage_name)s, %(status)s, %(event_time)s,
    %(records_processed)s, %(error_message)s, %(attempt)s, %(run_attempt)s,
    %(attributes)s, %(origin)s, %(line_number)s, %(raw_line)s
)
on conflict (event_id) do nothing
