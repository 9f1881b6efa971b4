"""A bulk batch of plain native lines, checked in compiled code (`loader/_plain_rows.c`).

`plain_rows` takes a batch's lines and returns them as `PlainRows` when every one is a plain
native event the bulk path can COPY as it is (named by run_key, no attributes, no escapes),
else None: the batch then goes the Python way (`loader.events.parse_line`), which accepts
what this accepts and more, with a reason for what it refuses. `PlainRows` gives the
batch's runs and stages, and, once they have ids, the COPY data for raw.run_events
(`loader.bulk_copy.copy_plain_rows`). `events` turns the rows into the Events the Python
way gives, for a batch that needs the full path after all.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from loader._plain_rows import PlainRows, plain_rows
from loader.contract import Event

_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def events(rows: PlainRows) -> list[Event]:
    """The rows as Events, in the batch's order, with the event ids the rows hold."""
    return [
        Event._make(
            (
                uuid.UUID(bytes=fields[0]),
                fields[1],
                _UNIX_EPOCH + timedelta(microseconds=fields[2]),
                *fields[3:],
            )
        )
        for fields in rows.fields()
    ]


__all__ = ["PlainRows", "events", "plain_rows"]
