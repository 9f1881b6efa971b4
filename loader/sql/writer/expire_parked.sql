-- Parked events whose run nobody named within the allowed age: quarantined,
-- byte for byte, with the reason they were parked for.
with expired as (
    delete from raw.parked_events as parked
    where parked.parked_at < now() - make_interval(secs => %(max_age)s)
    returning
        parked.origin,
        parked.line_number,
        parked.run_key,
        parked.parked_at,
        parked.raw_line
)

insert into raw.quarantined_events (origin, line_number, reason, raw_line)
select
    expired.origin,
    expired.line_number,
    'pipeline_name: required, run_key ' || quote_literal(expired.run_key)
    || ' is a new run and nothing named its pipeline within '
    || %(max_age)s || ' seconds (parked at ' || expired.parked_at || ')'
        as reason,
    expired.raw_line
from expired
order by expired.parked_at, expired.line_number
