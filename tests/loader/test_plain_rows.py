"""Bulk batches through the compiled check (`loader/_plain_rows.c`, `loader.plain_rows`).

Line by line, tests/loader/test_native_fast.py holds the compiled check to the general
path. Here, whole batches: what a file's batches store through it (one COPY of the rows
it wrote) is what the Python way stores, when the bulk path takes the batch and when the
full path must decide it after all; and new ids are the process's own after a fork.
"""

from __future__ import annotations

import io
import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any
from unittest import mock

import pytest

from loader import bulk_copy, ingest
from loader.connection import Connection, connect
from loader.ingest import ingest_stream
from loader.plain_rows import events, plain_rows
from loader.settings import Settings
from tests.support import quarantined_lines, query, stored_events

RUNS = 12  # runs of 14 events: a batch of 168 lines, past the one-statement path's 100


def run_lines(run: int) -> list[dict[str, Any]]:
    """A run's events as a bulk file gives them, each with its own event_id (the same in
    every call: a test loads a file twice and compares)."""
    key = f"run-{run}"
    documents: list[dict[str, Any]] = [
        {"run_key": key, "status": "running", "event_time": "2026-03-01T02:00:00Z",
         "pipeline_name": f"pipeline_{run % 3}"},
    ]  # fmt: skip
    for position, stage in enumerate(("extract", "tränsform", "load", "publish")):
        for minute, status, records in (
            (1, "running", None),
            (2, "running", 5),
            (3, "completed", 9),
        ):
            document = {
                "run_key": key, "status": status, "stage_name": stage, "attempt": 1 + run % 2,
                "event_time": f"2026-03-01T0{3 + position}:0{minute}:00.{run:06d}+02:00",
            }  # fmt: skip
            if records:
                document["records_processed"] = records * (run + 1)
            documents.append(document)
    documents.append(
        {"run_key": key, "status": "failed", "event_time": "2026-03-01T09:00:00Z",
         "error_message": f"exit {run}: dîsk full", "run_attempt": 2}
    )  # fmt: skip
    for number, document in enumerate(documents):
        document["event_id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{key}/{number}"))
    return documents


def line(document: dict[str, Any]) -> bytes:
    """As a producer writes it: UTF-8, no escapes."""
    return json.dumps(document, ensure_ascii=False).encode()


def data(documents: list[dict[str, Any]]) -> bytes:
    return b"".join(line(document) + b"\n" for document in documents)


def plain_file() -> list[dict[str, Any]]:
    return [document for run in range(RUNS) for document in run_lines(run)]


def with_registered_name(db: Connection) -> list[dict[str, Any]]:
    db.execute("insert into raw.runs (run_key, pipeline_name) values ('run-3', 'other')")
    return plain_file()


def with_parked_events(db: Connection) -> list[dict[str, Any]]:
    unnamed = {
        "event_id": "0d5b2d43-7a3b-4c8e-9f0a-6b2d4a8e1c01",
        "run_key": "run-5",
        "status": "running",
        "event_time": "2026-03-01T01:00:00Z",
    }
    ingest_stream(db, io.BytesIO(data([unnamed])), source="earlier")
    return plain_file()


def with_a_stored_event(db: Connection) -> list[dict[str, Any]]:
    documents = plain_file()
    ingest_stream(db, io.BytesIO(data(documents[20:21])), source="earlier")
    return documents


def with_two_names_for_a_run(db: Connection) -> list[dict[str, Any]]:
    documents = plain_file()
    documents[30]["pipeline_name"] = "a_second_name"
    return documents


def with_ids_shared_across_parts(db: Connection) -> list[dict[str, Any]]:
    """Two runs that fall in different parts hold the same two event_ids, in opposite
    orders: the file's first of each must win, whichever part would commit first."""
    documents = plain_file()
    rows = plain_rows([line(document) for document in documents])
    assert rows is not None
    (_, in_first), (_, in_second) = rows.partition(2)
    a, b = documents[in_first[0]]["run_key"], documents[in_second[0]]["run_key"]
    of_a = [document for document in documents if document["run_key"] == a]
    of_b = [document for document in documents if document["run_key"] == b]
    of_a[3]["event_id"] = of_b[9]["event_id"]
    of_b[3]["event_id"] = of_a[9]["event_id"]
    # The two runs' lines interleaved: run a holds the file's first copy of one id, run b
    # of the other.
    others = [document for document in documents if document["run_key"] not in {a, b}]
    return others + [document for pair in zip(of_a, of_b, strict=True) for document in pair]


# (how the file is made, whether the bulk path takes all of its batch, whether the batch
# is split between connections)
FILES: dict[str, tuple[Callable[[Connection], list[dict[str, Any]]], bool, bool]] = {
    "plain": (lambda db: plain_file(), True, True),
    "a run registered with another name": (with_registered_name, False, True),
    "parked events of one of its runs": (with_parked_events, False, True),
    "an event stored before": (with_a_stored_event, False, True),
    "two names for one run": (with_two_names_for_a_run, False, True),
    "event_ids shared by runs in two parts": (with_ids_shared_across_parts, False, False),
}


@pytest.mark.parametrize("connections", [1, 2])
@pytest.mark.parametrize("case", FILES.values(), ids=list(FILES))
def test_a_batch_stores_through_the_compiled_check_what_the_python_way_stores(
    database: Settings,
    db: Connection,
    case: tuple[Callable[[Connection], list[dict[str, Any]]], bool, bool],
    connections: int,
) -> None:
    make, copied, split = case

    def load(*, compiled: bool) -> tuple[Any, ...]:
        db.execute("truncate raw.run_events, raw.stages, raw.runs, raw.quarantined_events")
        db.execute("truncate raw.parked_events")
        documents = make(db)
        bulk: list[int | None] = []

        def copy_plain_rows(*args: Any, **kwargs: Any) -> int | None:
            bulk.append(bulk_copy.copy_plain_rows(*args, **kwargs))
            return bulk[-1]

        checked = mock.patch.object(ingest, "plain_rows", wraps=plain_rows)
        declined = mock.patch.object(ingest, "plain_rows", return_value=None)
        with (
            checked if compiled else declined,
            mock.patch.object(ingest, "copy_plain_rows", side_effect=copy_plain_rows),
            ExitStack() as stack,
        ):
            more = [
                stack.enter_context(connect(database, autocommit=True))
                for _ in range(connections - 1)
            ]
            result = ingest_stream(
                db, io.BytesIO(data(documents)), source="file", more_connections=more
            )
        outcome = (result.accepted, result.duplicates, result.parked, result.rejected)
        quarantine = [(row["reason"], bytes(row["raw_line"])) for row in quarantined_lines(db)]
        return (outcome, stored_events(db), quarantine), bulk

    compiled, bulk = load(compiled=True)
    python_way, _ = load(compiled=False)

    assert compiled == python_way
    assert len(bulk) == (connections if split else 1)
    assert (None not in bulk) == copied
    assert sum(filter(None, bulk)) <= RUNS * 14


def test_a_batch_with_one_line_the_compiled_check_declines_goes_the_python_way() -> None:
    lines = [line(document) for document in plain_file()]
    assert plain_rows(lines) is not None
    for declined in (b'{"run_key": "r", "status": "running"}', b"not json", lines[0] + b"x"):
        assert plain_rows([*lines, declined]) is None


def test_events_keep_the_ids_the_rows_hold() -> None:
    documents = plain_file()
    del documents[0]["event_id"]
    rows = plain_rows([line(document) for document in documents])
    assert rows is not None

    first, second = events(rows), events(rows)

    assert first == second
    assert first[0].event_id.version == 7
    assert [str(event.event_id) for event in first[1:]] == [d["event_id"] for d in documents[1:]]


def test_a_forked_child_draws_new_ids_from_random_bits_of_its_own() -> None:
    line = b'{"run_key":"r","status":"running","event_time":"2026-01-01T10:00:00Z"}'

    def random_bits() -> list[bytes]:
        rows = plain_rows([line] * 50)
        assert rows is not None
        return [event.event_id.bytes[6:] for event in events(rows)]

    random_bits()  # the parent draws its pool before the fork
    reading, writing = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child's result goes through the pipe
        os.write(writing, b"".join(random_bits()))
        os._exit(0)
    os.close(writing)
    with open(reading, "rb") as pipe:
        from_child = pipe.read()
    os.waitpid(child, 0)
    from_parent = b"".join(random_bits())

    assert len(from_child) == len(from_parent) == 50 * 10
    assert from_child != from_parent


def test_a_partition_keeps_each_run_in_one_part_and_each_row_as_it_was() -> None:
    documents = plain_file()
    rows = plain_rows([line(document) for document in documents])
    assert rows is not None
    whole = events(rows)

    parts = rows.partition(3)

    assert sorted(position for _, positions in parts for position in positions) == list(
        range(len(documents))
    )
    runs = [{event.run_key for event in events(part)} for part, _ in parts]
    assert sum(map(len, runs)) == len(set().union(*runs)) == RUNS
    names = rows.run_names()
    assert names is not None
    for part, positions in parts:
        assert events(part) == [whole[position] for position in positions]
        part_names = part.run_names()
        assert part_names is not None
        assert part_names == {key: names[key] for key in part_names}
        assert set(part_names) == {event.run_key for event in events(part)}


def test_a_part_that_fails_stops_the_load_once_the_other_part_has_landed(
    database: Settings, db: Connection
) -> None:
    documents = plain_file()
    failing = threading.Event()

    def copy_plain_rows(conn: Connection, rows: Any, *args: Any, **kwargs: Any) -> int | None:
        if conn is db:  # the first part, the first to be waited for
            failing.set()
            raise RuntimeError("this connection broke")
        failing.wait(5)
        time.sleep(0.2)  # still copying when the other part has failed
        return bulk_copy.copy_plain_rows(conn, rows, *args, **kwargs)

    with (
        mock.patch.object(ingest, "copy_plain_rows", side_effect=copy_plain_rows),
        connect(database, autocommit=True) as other,
        pytest.raises(RuntimeError, match="this connection broke"),
    ):
        ingest_stream(db, io.BytesIO(data(documents)), source="file", more_connections=[other])
    landed = query(db, "select count(*) as n from raw.run_events")

    assert failing.is_set()
    assert 0 < landed[0]["n"] < len(documents), "the other part landed before the error"
