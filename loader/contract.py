"""The run-event contract's vocabulary: statuses, limits, the validated Event, event ids.

docs/event-contract.md states the rules; the parsers (`native`, `openlineage`) build
Events, and nothing else does.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, NamedTuple

# In precedence order, lowest first (ties on event_time go to the higher one). The raw
# schema's check constraint and the dbt macro `pipeline_statuses` hold the same list;
# tests/operations/test_structure.py checks that they agree.
STATUSES = ("pending", "running", "completed", "failed")
TERMINAL_STATUSES = frozenset({"completed", "failed"})
MAX_NAME_LENGTH = 200
# error_message is stored up to this many UTF-8 bytes; the full text goes to attributes.
ERROR_MESSAGE_LIMIT_BYTES = 8 * 1024
ERROR_MESSAGE_FULL_ATTRIBUTE = "error_message_full"
# jsonb and the JSON parser both recurse; a bound keeps hostile nesting from reaching them.
MAX_ATTRIBUTES_DEPTH = 64
# How long an event of an unknown run waits (parked) for an event naming its pipeline.
DEFAULT_PARKED_MAX_AGE = 86_400.0
# The attributes a RunEvent's mapping writes: the whole RunEvent, and where the loader put it
# (dbt reads both). A native event may not set them, so dbt can trust them.
OPENLINEAGE_EVENT_ATTRIBUTE = "openlineage"
OPENLINEAGE_PLACEMENT_ATTRIBUTE = "openlineage_placement"
BIGINT_MAX = 2**63 - 1
INTEGER_MAX = 2**31 - 1
_DERIVED_ID_NAMESPACE = uuid.UUID("5d0f4a52-8a57-4a8e-9d2c-2f1c7b7d1e01")

FIELDS = frozenset(
    {
        "event_id",
        "run_key",
        "pipeline_id",
        "pipeline_name",
        "stage_name",
        "status",
        "event_time",
        "records_processed",
        "error_message",
        "attempt",
        "run_attempt",
        "attributes",
    }
)


class Event(NamedTuple):
    """One validated run event. Built by the parsers, never by hand.

    A named tuple, immutable: a bulk load builds one per line, at a third of a frozen
    dataclass's cost.
    """

    event_id: uuid.UUID
    status: str
    event_time: datetime
    run_key: str | None = None
    pipeline_id: int | None = None
    pipeline_name: str | None = None
    stage_name: str | None = None
    records_processed: int | None = None
    error_message: str | None = None
    attempt: int = 1
    run_attempt: int = 1
    attributes: Mapping[str, Any] | None = None


_UUID7_RANDOM = (2**80 - 1) & ~(0xF << 76) & ~(0b11 << 62)
"""The bits of the low 80 that are random: all but the version's 4 and the variant's 2."""
_UUID7_MARKS = (0x7 << 76) | (0b10 << 62)
_RANDOM_DRAW = 1024
_random_drawn: list[int] = []
os.register_at_fork(after_in_child=_random_drawn.clear)


def new_event_id() -> uuid.UUID:
    """Return a UUIDv7: time-ordered, so new events land near each other in the primary key.

    48 bits of Unix milliseconds, version 7, 12 random bits, the RFC 4122 variant, 62
    random bits. Built without `UUID(int=...)`'s range checks, which cost a bulk load
    more than the random bytes do: the value is in range by construction.
    """
    unix_ms = time.time_ns() // 1_000_000 & (2**48 - 1)
    random_bits = _random_bits()
    event_id = object.__new__(uuid.UUID)
    object.__setattr__(event_id, "int", unix_ms << 80 | _UUID7_MARKS | random_bits)
    object.__setattr__(event_id, "is_safe", uuid.SafeUUID.unknown)
    return event_id


def _random_bits() -> int:
    """The random bits of a UUIDv7, from the OS a thousand ids at a time.

    One `os.urandom` per id released the GIL per event, and a bulk load's writer thread
    took it each time: a fifth of the load's wall time went to the hand-overs. `list.pop`
    hands each drawn value to one thread only; a forked child starts with none of its
    parent's, so two processes never share one.
    """
    while True:
        try:
            return _random_drawn.pop()
        except IndexError:
            pool = os.urandom(10 * _RANDOM_DRAW)
            _random_drawn.extend(
                int.from_bytes(pool[start : start + 10], "big") & _UUID7_RANDOM
                for start in range(0, len(pool), 10)
            )


def derived_event_id(*parts: str) -> uuid.UUID:
    """Return an event id fixed by `parts`: sending the same event twice counts once."""
    return uuid.uuid5(_DERIVED_ID_NAMESPACE, json.dumps(parts))
