insert into raw.quarantined_events (origin, line_number, reason, raw_line)
values (%(origin)s, %(line_number)s, %(reason)s, %(raw_line)s)
