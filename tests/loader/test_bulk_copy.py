"""The bulk path (`loader.bulk_copy`) against the full path it stands in for.

A batch of more than a job's call takes the bulk path when it is clean and the full path
otherwise; either way the database must end as the full path alone leaves it: the same
runs, stages, events, parked events, quarantine and counts, whatever the batches hold
(runs known or new, a second name, a pruned run, parked events, event ids repeated within
a batch or stored before, events naming their run by id).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from loader import bulk_copy, writer
from loader.batch import Candidate, LoadResult
from loader.connection import Connection, connect
from loader.events import document_bytes, parse_event
from loader.settings import Settings
from loader.writer import write_batch
from tests.support import clear_built, quarantined_lines, query, stored_events

T0 = datetime(2026, 3, 1, tzinfo=UTC)
STAGES = ("extract", "load", None)
_NAMESPACE = uuid.UUID("6f0c1a53-52a7-4f9e-8a1e-7d0c3b2a1f00")


def event_id(number: int) -> str:
    return str(uuid.uuid5(_NAMESPACE, str(number)))


def candidates(documents: Sequence[dict[str, Any]], first_line: int = 1) -> list[Candidate]:
    return [
        Candidate(parse_event(document), document_bytes(document), first_line + n)
        for n, document in enumerate(documents)
    ]


@st.composite
def histories(draw: st.DrawFn) -> dict[str, Any]:
    """What the database holds before, and the batches that follow (each over 100 events)."""
    keys = [f"run-{n}" for n in range(draw(st.integers(1, 4)))]
    registered = {
        key: draw(st.sampled_from(["daily", "hourly"])) for key in keys if draw(st.booleans())
    }
    batches = []
    for _ in range(draw(st.integers(1, 3))):
        events = []
        size = draw(st.integers(101, 140))
        # Per run: the name this batch gives it (None: never named here), a second one.
        names = {key: draw(st.sampled_from([None, "daily", "hourly"])) for key in keys}
        second_names = {key for key in keys if draw(st.integers(0, 5)) == 0}
        for n in range(size):
            key = keys[n % len(keys)]
            document: dict[str, Any] = {
                # Now and then an id drawn from a few: repeated in a batch or across them.
                "event_id": event_id(
                    draw(st.integers(0, 400)) if n % 37 == 0 else 1000 * (len(batches) + 1) + n
                ),
                "run_key": key,
                "status": "completed" if n >= size - len(keys) else "running",
                "event_time": (T0 + timedelta(seconds=n)).isoformat(),
                "records_processed": n,
            }
            stage = STAGES[(n // len(keys)) % len(STAGES)]
            if stage is not None:
                document["stage_name"] = stage
            if n < len(keys) and names[key] is not None:
                document["pipeline_name"] = names[key]
            if n == len(keys) and key in second_names:
                document["pipeline_name"] = "other"
            events.append(document)
        batches.append(events)
    return {
        "registered": registered,
        "pruned": [key for key in registered if draw(st.integers(0, 4)) == 0],
        "parked": [key for key in keys if key not in registered and draw(st.integers(0, 3)) == 0],
        "by_id": draw(st.integers(0, 5)) == 0,
        "batches": batches,
    }


def load(conn: Connection, history: dict[str, Any]) -> list[LoadResult]:
    clear_built(conn)
    prior = [
        {"run_key": key, "pipeline_name": name, "status": "pending", "event_time": T0.isoformat()}
        for key, name in history["registered"].items()
    ] + [
        {"run_key": key, "status": "running", "event_time": T0.isoformat()}
        for key in history["parked"]
    ]
    prior = [{**document, "event_id": event_id(-n - 1)} for n, document in enumerate(prior)]
    if prior:
        write_batch(conn, candidates(prior, first_line=-len(prior)), source="prior")
    for key in history["pruned"]:
        conn.execute("update raw.runs set pruned_at = %s where run_key = %s", [T0, key])
    batches = [list(batch) for batch in history["batches"]]
    if history["by_id"] and history["registered"]:
        [(pipeline_id,)] = conn.execute("select min(pipeline_id) from raw.runs").fetchall()
        batches[0][0] = {**batches[0][0], "pipeline_id": pipeline_id}
        del batches[0][0]["run_key"]
    return [
        write_batch(conn, candidates(batch, first_line=1000 * number), source="bulk")
        for number, batch in enumerate(batches)
    ]


def database_state(conn: Connection) -> dict[str, Any]:
    return {
        "events": stored_events(conn),
        "runs": query(conn, "select run_key, pipeline_name, pruned_at from raw.runs order by 1"),
        "stages": query(
            conn,
            "select run_key, stage_name from raw.stages join raw.runs using (pipeline_id)"
            " order by 1, 2",
        ),
        "parked": query(conn, "select event_id, run_key, origin from raw.parked_events order by 1"),
        "quarantine": quarantined_lines(conn),
    }


def counts(result: LoadResult) -> tuple[Any, ...]:
    return (
        result.accepted,
        result.duplicates,
        [str(rejection) for rejection in result.rejections],
        result.parked,
        result.unparked,
    )


def full_path_only() -> Any:
    return mock.patch.object(writer, "copy_clean_batch", return_value=None)


class BulkTally:
    """Counts the batches the bulk path stored, around the real function."""

    def __init__(self) -> None:
        self.stored = 0
        self._real = bulk_copy.copy_clean_batch

    def __call__(self, *args: Any) -> int | None:
        copied = self._real(*args)
        self.stored += copied is not None
        return copied


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=histories())
def test_any_history_ends_as_the_full_path_leaves_it(
    db: Connection, history: dict[str, Any]
) -> None:
    tally = BulkTally()
    with mock.patch.object(writer, "copy_clean_batch", tally):
        bulk_results = load(db, history)
    bulk_state = database_state(db)
    with full_path_only():
        full_results = load(db, history)
    assert database_state(db) == bulk_state
    assert [counts(result) for result in bulk_results] == [
        counts(result) for result in full_results
    ]
    event(f"batches stored by the bulk path: {tally.stored}")


def clean_batch() -> list[dict[str, Any]]:
    """150 events of three runs: run-0 registered before (as "daily"), run-1 and run-2 new;
    most of them with attributes."""
    return [
        {
            "event_id": event_id(1000 + n),
            "run_key": f"run-{n % 3}",
            **({"pipeline_name": "daily"} if 0 < n < 3 else {}),
            **({"stage_name": STAGES[n % 2]} if n >= 3 else {}),
            **(
                {"attributes": {"host": f"é-{n}", "spark": {"tasks": [n, 2.5, None]}}}
                if n % 5
                else {}
            ),
            "status": "running",
            "event_time": (T0 + timedelta(seconds=n)).isoformat(),
        }
        for n in range(150)
    ]


def changed(position: int, **fields: Any) -> Any:
    def change(batch: list[dict[str, Any]]) -> None:
        batch[position] = {
            key: value for key, value in {**batch[position], **fields}.items() if value is not None
        }

    return change


# One thing each, that the bulk path leaves to the full path (for the full path's reason,
# or for its counting).
NOT_CLEAN = {
    "a second name for a new run": changed(4, pipeline_name="hourly"),
    "a name that differs from the registered one": changed(3, pipeline_name="hourly"),
    "an event naming its run by id alone": changed(6, run_key=None, pipeline_id=1),
    "a run id that does not match its run_key": changed(7, pipeline_id=1),
    "an event_id twice": changed(9, event_id=event_id(1000 + 8)),
    "an event_id stored before": changed(10, event_id=event_id(-1)),
    "a new run nothing names": changed(11, run_key="run-unnamed"),
    "a pruned run": "pruned",
    "parked events of a run the batch names": "parked run-1",
    "parked events of a run registered since": "parked run-late",
}


def prepare(conn: Connection, condition: Any) -> list[dict[str, Any]]:
    """The registered run-0 (and what `condition` needs), then the batch to load."""
    clear_built(conn)
    prior = [{"run_key": "run-0", "pipeline_name": "daily"}]
    if isinstance(condition, str) and condition.startswith("parked "):
        prior.append({"run_key": condition.removeprefix("parked ")})
    prior = [
        {
            **document,
            "event_id": event_id(-n - 1),
            "status": "pending",
            "event_time": T0.isoformat(),
        }
        for n, document in enumerate(prior)
    ]
    write_batch(conn, candidates(prior, first_line=-9), source="prior")
    if condition == "parked run-late":
        conn.execute("insert into raw.runs (run_key, pipeline_name) values ('run-late', 'late')")
    if condition == "pruned":
        conn.execute("update raw.runs set pruned_at = %s where run_key = 'run-0'", [T0])
    batch = clean_batch()
    if callable(condition):
        condition(batch)
    return batch


@pytest.mark.parametrize("condition", [None, *NOT_CLEAN.values()], ids=["clean", *NOT_CLEAN])
def test_the_bulk_path_stores_only_clean_batches(db: Connection, condition: Any) -> None:
    tally = BulkTally()
    with mock.patch.object(writer, "copy_clean_batch", tally):
        bulk_result = write_batch(db, candidates(prepare(db, condition)), source="bulk")
    bulk_state = database_state(db)
    with full_path_only():
        full_result = write_batch(db, candidates(prepare(db, condition)), source="bulk")
    assert database_state(db) == bulk_state
    assert counts(bulk_result) == counts(full_result)
    assert tally.stored == (condition is None)


def test_concurrent_loaders_of_the_same_runs_lose_and_double_nothing(
    database: Settings, db: Connection
) -> None:
    """Two loaders register the same new runs and stages, and share some event ids: each
    batch lands whole, through the bulk path or, when the other came first, the full one."""

    def batch(loader: int) -> list[dict[str, Any]]:
        return [
            {
                "event_id": event_id(n if n % 10 == 0 else 10_000 * loader + n),
                "run_key": f"shared-{n % 7}",
                "pipeline_name": "daily",
                "stage_name": f"stage-{n % 3}",
                "status": "running",
                "event_time": (T0 + timedelta(seconds=n)).isoformat(),
            }
            for n in range(500)
        ]

    def run(loader: int, start: threading.Barrier, results: dict[int, LoadResult]) -> None:
        with connect(database, autocommit=True) as conn:
            start.wait()
            results[loader] = write_batch(conn, candidates(batch(loader)), source="race")

    for round_number in range(3):
        clear_built(db)
        start = threading.Barrier(2)
        results: dict[int, LoadResult] = {}
        threads = [threading.Thread(target=run, args=(loader, start, results)) for loader in (1, 2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        stored = {row["event_id"] for row in stored_events(db)}
        assert len(stored) == 2 * 500 - 50, round_number
        assert sum(result.accepted for result in results.values()) == len(stored)
        assert sum(result.duplicates for result in results.values()) == 50
        assert query(db, "select count(*) as n from raw.runs") == [{"n": 7}]
        assert query(db, "select count(*) as n from raw.stages") == [{"n": 21}]
