"""The collector's request bodies: the one-pass check of a plain line gives what the general
path gives (the same documents, candidates and rejections), and is taken when it may be."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

import pytest

from loader import collector, fields, native_fast
from loader.collector import Work, native_request

GENERATED_ID = uuid.UUID("01890a5d-ac96-774b-bcce-b302099a8057")
PLAIN = {
    "event_id": "0b0ab7a4-7b1e-4b5a-9c55-3f1e8f1f6a01",
    "run_key": "r-1",
    "pipeline_name": "daily",
    "stage_name": "load",
    "status": "completed",
    "event_time": "2026-01-01T10:00:00+02:00",
    "records_processed": 5,
}


def body(*documents: dict[str, object]) -> bytes:
    return b"\n".join(json.dumps(document).encode() for document in documents)


# (body, how many of its events the general path must check)
BODIES = {
    "one plain event": (body(PLAIN), 0),
    "plain events as JSON lines": (body(PLAIN, {**PLAIN, "event_id": str(uuid.uuid4())}), 0),
    "without its event_id": (body({k: v for k, v in PLAIN.items() if k != "event_id"}), 1),
    "with a null event_id": (body({**PLAIN, "event_id": None}), 1),
    "with attributes": (body({**PLAIN, "attributes": {"k": 1}}), 1),
    "a bad line among plain ones": (body(PLAIN, {**PLAIN, "status": "bogus"}), 1),
    "a line that is not JSON": (body(PLAIN) + b'\n{"run_key": ', 0),
    "an array": (json.dumps([PLAIN]).encode(), 1),
}


@contextmanager
def fixed_new_ids() -> Iterator[None]:
    with (
        mock.patch.object(collector, "new_event_id", return_value=GENERATED_ID),
        mock.patch.object(fields, "new_event_id", return_value=GENERATED_ID),
        mock.patch.object(native_fast, "new_event_id", return_value=GENERATED_ID),
    ):
        yield


def as_compared(work: Work) -> tuple[object, ...]:
    return (work.documents, work.candidates, work.rejections, work.others, work.single)


@pytest.mark.parametrize(("data", "general_checks"), BODIES.values(), ids=list(BODIES))
def test_a_native_body_reads_the_same_with_and_without_the_one_pass_check(
    data: bytes, general_checks: int
) -> None:
    with (
        fixed_new_ids(),
        mock.patch.object(collector, "parse_event", wraps=collector.parse_event) as general,
    ):
        ours = native_request(data)
        checked = general.call_count
        with mock.patch.object(collector, "decode_plain_line", return_value=None):
            general_only = native_request(data)

    assert as_compared(ours) == as_compared(general_only)
    assert checked == general_checks
    for candidate in ours.candidates:  # the document a spool would keep has the event's id
        assert ours.documents[candidate.line_number - 1]["event_id"] == str(
            candidate.event.event_id
        )
