"""The Python API pipeline jobs call: runs, stages and their context managers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from loader import Ledger, RejectedEventsError, Run
from loader.connection import Connection
from tests.support import query

T0 = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
LONG_AGO = datetime(2001, 1, 1, tzinfo=UTC)

EVENTS_SQL = """
select runs.run_key, runs.pipeline_name, stages.stage_name, events.status,
    events.records_processed, events.error_message, events.attempt, events.attributes,
    events.event_time
from raw.run_events as events
inner join raw.runs on runs.pipeline_id = events.pipeline_id
left join raw.stages
    on stages.stage_id = events.stage_id and stages.pipeline_id = events.pipeline_id
where events.pipeline_id = %s
order by events.event_time, events.event_id
"""


def events_of(db: Connection, pipeline_id: int) -> list[dict[str, Any]]:
    return query(db, EVENTS_SQL, [pipeline_id])


def statuses(db: Connection, pipeline_id: int) -> list[tuple[str | None, str]]:
    """(stage_name, status) of the run's events, in the order they were recorded."""
    return [(row["stage_name"], row["status"]) for row in events_of(db, pipeline_id)]


def pipeline_id(db: Connection, run_key: str) -> int:
    [row] = query(db, "select pipeline_id from raw.runs where run_key = %s", [run_key])
    return int(row["pipeline_id"])


def count(db: Connection, table: str) -> int:
    return int(query(db, f"select count(*) as n from {table}")[0]["n"])


def test_start_run_records_the_run_running_and_its_planned_stages_pending(
    ledger: Ledger, db: Connection
) -> None:
    run = ledger.start_run(
        "daily_sales", run_key="flow-1", stages=["extract", "load"], at=T0, attributes={"k": 1}
    )

    assert isinstance(run.id, int)
    assert (run.pipeline_name, run.run_key) == ("daily_sales", "flow-1")
    assert query(
        db, "select pipeline_id, pipeline_name from raw.runs where run_key = 'flow-1'"
    ) == [{"pipeline_id": run.id, "pipeline_name": "daily_sales"}]
    rows = events_of(db, run.id)
    assert sorted((row["stage_name"] or "", row["status"]) for row in rows) == [
        ("", "running"),
        ("extract", "pending"),
        ("load", "pending"),
    ]
    assert {row["event_time"] for row in rows} == {T0}
    [run_row] = [row for row in rows if row["stage_name"] is None]
    assert run_row["attributes"] == {"k": 1}


def test_start_run_pending_records_a_queued_run(ledger: Ledger, db: Connection) -> None:
    run = ledger.start_run("daily_sales", stages=["extract"], status="pending")

    assert sorted((row["stage_name"] or "", row["status"]) for row in events_of(db, run.id)) == [
        ("", "pending"),
        ("extract", "pending"),
    ]
    assert uuid.UUID(run.run_key).version == 7


def test_starting_the_same_run_key_twice_returns_the_same_id_and_stores_nothing_new(
    ledger: Ledger, db: Connection
) -> None:
    first = ledger.start_run("daily_sales", run_key="flow-1", stages=["extract"])
    before = {table: count(db, table) for table in ("raw.runs", "raw.stages", "raw.run_events")}

    second = ledger.start_run("daily_sales", run_key="flow-1", stages=["extract"])

    assert second.id == first.id
    after = {table: count(db, table) for table in ("raw.runs", "raw.stages", "raw.run_events")}
    assert after == before == {"raw.runs": 1, "raw.stages": 1, "raw.run_events": 2}


def test_different_run_keys_get_different_ids(ledger: Ledger) -> None:
    assert ledger.start_run("p", run_key="a").id != ledger.start_run("p", run_key="b").id


def test_run_and_stage_context_managers_record_running_then_completed(
    ledger: Ledger, db: Connection
) -> None:
    with ledger.run("daily_sales", run_key="flow-1", stages=["extract"]) as run:
        assert set(statuses(db, run.id)) == {(None, "running"), ("extract", "pending")}
        with run.stage("extract") as stage:
            assert statuses(db, run.id)[2:] == [("extract", "running")]
            stage.records = 42
        assert statuses(db, run.id)[2:] == [("extract", "running"), ("extract", "completed")]
        run.records = 40

    rows = events_of(db, run.id)
    assert statuses(db, run.id)[2:] == [
        ("extract", "running"),
        ("extract", "completed"),
        (None, "completed"),
    ]
    completed = {row["stage_name"]: row for row in rows if row["status"] == "completed"}
    assert completed["extract"]["records_processed"] == 42
    assert completed[None]["records_processed"] == 40
    assert all(row["error_message"] is None for row in rows)


def failing_job(ledger: Ledger) -> None:
    with (
        ledger.run("daily_sales", run_key="failing", stages=["extract"]) as run,
        run.stage("extract", attempt=2) as stage,
    ):
        stage.records = 3
        raise ValueError("boom")


def test_failing_stage_and_run_record_the_error_and_reraise(ledger: Ledger, db: Connection) -> None:
    with pytest.raises(ValueError, match=r"^boom$"):
        failing_job(ledger)

    run = ledger.attach(pipeline_id(db, "failing"))
    failed = {row["stage_name"]: row for row in events_of(db, run.id) if row["status"] == "failed"}
    assert set(failed) == {"extract", None}
    assert (failed["extract"]["attempt"], failed["extract"]["records_processed"]) == (2, 3)
    for row in failed.values():
        assert row["error_message"] == "ValueError: boom"
        trace = row["attributes"]["stack_trace"]
        assert trace.startswith("Traceback (most recent call last):")
        assert 'raise ValueError("boom")' in trace
        assert trace.rstrip().endswith("ValueError: boom")
    assert not any(row["status"] == "completed" for row in events_of(db, run.id))


def test_run_records_a_bare_base_exception_by_its_type_and_reraises_it(
    ledger: Ledger, db: Connection
) -> None:
    with pytest.raises(KeyboardInterrupt), ledger.run("daily_sales") as run:
        raise KeyboardInterrupt

    [row] = [row for row in events_of(db, run.id) if row["status"] == "failed"]
    assert row["error_message"] == "KeyboardInterrupt"
    assert "KeyboardInterrupt" in row["attributes"]["stack_trace"]


def test_stage_handles_report_heartbeats_and_retries(ledger: Ledger, db: Connection) -> None:
    run = ledger.start_run("daily_sales", stages=["extract"], at=LONG_AGO)
    stage = run.stage("extract")
    stage.started()
    stage.heartbeat(10)
    stage.failed("timeout", records=10)
    retry = run.stage("extract", attempt=2)
    retry.started()
    retry.completed(25)
    run.completed(25)

    rows = [
        (row["stage_name"], row["status"], row["attempt"], row["records_processed"])
        for row in events_of(db, run.id)
        if row["event_time"] != LONG_AGO
    ]
    assert rows == [
        ("extract", "running", 1, None),
        ("extract", "running", 1, 10),
        ("extract", "failed", 1, 10),
        ("extract", "running", 2, None),
        ("extract", "completed", 2, 25),
        (None, "completed", 1, 25),
    ]
    assert count(db, "raw.stages") == 1


def test_emit_many_stores_good_events_and_quarantines_the_bad_one(
    ledger: Ledger, db: Connection
) -> None:
    good = [
        {"run_key": "flow-1", "pipeline_name": "daily_sales", "status": "running"},
        {"run_key": "flow-1", "stage_name": "extract", "status": "completed"},
    ]
    bad = {"run_key": "flow-1", "status": "completed", "records_processed": -5}

    with pytest.raises(RejectedEventsError) as caught:
        ledger.emit_many([good[0], bad, good[1]])

    assert caught.value.rejections == [
        "line 2: records_processed: -5 is out of range (0 to 9223372036854775807)"
    ]
    assert "records_processed" in str(caught.value)
    assert sorted(row["stage_name"] or "" for row in events_of(db, pipeline_id(db, "flow-1"))) == [
        "",
        "extract",
    ]
    [row] = query(db, "select origin, line_number, reason, raw_line from raw.quarantined_events")
    assert (row["origin"], row["line_number"]) == ("api", 2)
    assert row["reason"].startswith("records_processed: ")
    assert b'"records_processed": -5' in bytes(row["raw_line"])


def test_emit_rejects_an_event_of_an_unknown_run(ledger: Ledger, db: Connection) -> None:
    with pytest.raises(RejectedEventsError, match="pipeline_id: 31337 is not a known run id"):
        ledger.emit({"pipeline_id": 31337, "status": "running"})
    assert count(db, "raw.run_events") == 0
    assert count(db, "raw.quarantined_events") == 1


def test_emit_fills_event_time_with_now(ledger: Ledger, db: Connection) -> None:
    before = datetime.now(UTC)
    ledger.emit({"run_key": "flow-1", "pipeline_name": "p", "status": "running"})
    after = datetime.now(UTC)

    [row] = query(db, "select event_time from raw.run_events")
    assert before <= row["event_time"] <= after


def test_attach_records_on_a_run_by_id_or_run_key(ledger: Ledger, db: Connection) -> None:
    run = ledger.start_run("daily_sales", run_key="flow-1")

    ledger.attach(run.id).stage("extract").started()
    ledger.attach("flow-1").stage("load").started()

    rows = query(
        db,
        "select stages.pipeline_id, stages.stage_name from raw.run_events as events"
        " inner join raw.stages using (stage_id) order by stages.stage_name",
    )
    assert rows == [
        {"pipeline_id": run.id, "stage_name": "extract"},
        {"pipeline_id": run.id, "stage_name": "load"},
    ]


def test_an_unknown_id_is_rejected_when_its_first_event_is_recorded(
    ledger: Ledger, db: Connection
) -> None:
    run = ledger.attach(424242)
    with pytest.raises(RejectedEventsError, match="pipeline_id: 424242 is not a known run id"):
        run.completed()
    assert query(db, "select count(*) as n from raw.quarantined_events") == [{"n": 1}]


def test_ledger_reconnects_after_its_connection_is_closed(ledger: Ledger, db: Connection) -> None:
    run = ledger.start_run("daily_sales", run_key="flow-1")
    first = ledger.connection()
    first.close()

    run.completed(5)

    assert ledger.connection() is not first
    assert not ledger.connection().closed
    assert ("completed", 5) in [
        (row["status"], row["records_processed"]) for row in events_of(db, run.id)
    ]


def test_ledger_close_then_reuse_opens_a_new_connection(ledger: Ledger, db: Connection) -> None:
    ledger.start_run("daily_sales", run_key="flow-1")
    ledger.close()

    assert ledger.start_run("daily_sales", run_key="flow-2").run_key == "flow-2"
    assert count(db, "raw.runs") == 2


def test_passing_your_own_event_id_twice_counts_once(ledger: Ledger, db: Connection) -> None:
    run = ledger.start_run("daily_sales", run_key="flow-1")
    event_id = str(uuid.uuid4())
    before = count(db, "raw.run_events")

    run.record("running", stage_name="extract", records=1, event_id=event_id)
    run.record("running", stage_name="extract", records=2, event_id=event_id)
    result = ledger.emit(
        {"event_id": event_id, "pipeline_id": run.id, "status": "completed", "records_processed": 3}
    )

    assert (result.accepted, result.duplicates) == (0, 1)
    assert count(db, "raw.run_events") == before + 1
    [row] = query(
        db, "select status, records_processed from raw.run_events where event_id = %s", [event_id]
    )
    assert (row["status"], row["records_processed"]) == ("running", 1)


def test_attach_takes_a_run_handle_and_refuses_a_missing_id(ledger: Ledger, db: Connection) -> None:
    run = ledger.start_run("daily_sales", run_key="flow-1")
    offline = Run(ledger, None, "daily_sales", "flow-1")  # as start_run returns it in an outage

    ledger.attach(run).stage("extract").started()
    ledger.attach(offline).stage("load").started()
    with pytest.raises(TypeError, match="pass the Run or its run_key"):
        ledger.attach(offline.id)  # type: ignore[arg-type]

    assert [name for name, _ in statuses(db, run.id)] == [None, "extract", "load"]
