"""Eight loaders at once, with overlapping event ids and shared runs: exact counts."""

from __future__ import annotations

import io
import json
import multiprocessing
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from loader import Ledger, Settings
from loader.ingest import ingest_stream
from tests.support import query

PROCESSES = 8
EVENTS_PER_PROCESS = 50_000
# Each event is sent by exactly two processes: the windows overlap by half.
UNIQUE_EVENTS = PROCESSES * EVENTS_PER_PROCESS // 2
EVENTS_PER_RUN = 400
STAGES = ("extract", "transform", "load", "publish")
NAMESPACE = uuid.UUID("0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9")
T0 = datetime(2026, 2, 1, tzinfo=UTC)


def expected_event(index: int) -> dict[str, Any]:
    run = index // EVENTS_PER_RUN
    return {
        "event_id": str(uuid.uuid5(NAMESPACE, str(index))),
        "run_key": f"run-{run}",
        "pipeline_name": f"pipeline-{run % 7}",
        "stage_name": STAGES[index % len(STAGES)],
        "status": "running",
        "event_time": (T0 + timedelta(seconds=index)).isoformat(),
        "records_processed": index,
    }


def load_window(settings: Settings, process: int) -> tuple[int, int, int]:
    """Ingest this process's window of the event universe; return the counts."""
    start = process * EVENTS_PER_PROCESS // 2
    lines = (
        json.dumps(expected_event((start + offset) % UNIQUE_EVENTS)).encode() + b"\n"
        for offset in range(EVENTS_PER_PROCESS)
    )
    with Ledger(settings) as ledger:
        result = ingest_stream(
            ledger.connection(), io.BytesIO(b"".join(lines)), source=f"process-{process}"
        )
    return result.accepted, result.duplicates, result.rejected


def test_eight_concurrent_loaders_store_each_event_once(database, db):
    context = multiprocessing.get_context("spawn")
    with context.Pool(PROCESSES) as pool:
        counts = pool.starmap(load_window, [(database, p) for p in range(PROCESSES)])

    accepted, duplicates, rejected = (sum(column) for column in zip(*counts, strict=True))
    assert (accepted, duplicates, rejected) == (
        UNIQUE_EVENTS,
        PROCESSES * EVENTS_PER_PROCESS - UNIQUE_EVENTS,
        0,
    )
    stored = query(
        db,
        "select events.event_id::text as event_id, runs.run_key, stages.stage_name,"
        " events.records_processed from raw.run_events as events"
        " inner join raw.runs using (pipeline_id)"
        " inner join raw.stages using (stage_id)",
    )
    assert len(stored) == UNIQUE_EVENTS
    by_id = {row.pop("event_id"): row for row in stored}
    for index in range(UNIQUE_EVENTS):
        event = expected_event(index)
        assert by_id[event["event_id"]] == {
            "run_key": event["run_key"],
            "stage_name": event["stage_name"],
            "records_processed": index,
        }
    runs = UNIQUE_EVENTS // EVENTS_PER_RUN
    assert query(db, "select count(*) as n, count(distinct run_key) as keys from raw.runs") == [
        {"n": runs, "keys": runs}
    ]
    assert query(db, "select count(*) as n from raw.stages") == [{"n": runs * len(STAGES)}]
