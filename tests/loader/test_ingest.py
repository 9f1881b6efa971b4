"""Bulk loads against a real PostgreSQL: what lands, what is quarantined, and the ids given."""

from __future__ import annotations

import io
import json
import uuid
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import pytest

from loader import writer
from loader.batch import Candidate, LoadResult, Rejection
from loader.connection import Connection, connect
from loader.events import parse_event
from loader.ingest import ingest_stream
from loader.settings import Settings
from loader.writer import write_batch
from tests.support import jsonl, quarantined_lines, query, stored_events

pytestmark = pytest.mark.pg15

T0 = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
SOURCE = "events.jsonl"


def event(
    run_key: str | None = "run-1", status: str = "running", minute: float = 0, **fields: Any
) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "run_key": run_key,
        "status": status,
        "event_time": (T0 + timedelta(minutes=minute)).isoformat(),
        **fields,
    }


def line(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode()


def ingest(conn: Connection, data: bytes, *, batch_lines: int = 10_000) -> LoadResult:
    return ingest_stream(conn, io.BytesIO(data), source=SOURCE, batch_lines=batch_lines)


def stored_event(conn: Connection, event_id: str) -> dict[str, Any]:
    [row] = [row for row in stored_events(conn) if str(row["event_id"]) == event_id]
    return row


def pipeline_id(conn: Connection, run_key: str) -> int:
    [row] = query(conn, "select pipeline_id from raw.runs where run_key = %s", [run_key])
    return int(row["pipeline_id"])


def stage_ids(conn: Connection) -> dict[tuple[str, str], int]:
    rows = query(
        conn,
        "select run_key, stage_name, stage_id from raw.stages inner join raw.runs using "
        "(pipeline_id)",
    )
    return {(row["run_key"], row["stage_name"]): row["stage_id"] for row in rows}


def test_good_lines_land_while_bad_lines_beside_them_are_quarantined_verbatim(
    db: Connection,
) -> None:
    first = event(pipeline_name="daily_sales")
    second = event(status="completed", minute=5, records_processed=12)
    bad_lines = {
        2: (b'{"run_key": "run-1", "status": ', "not valid JSON"),
        3: (b'{"run_key": "run-\xff\xfe", "status": "running"}', "not valid UTF-8"),
        5: (
            b'{ "run_key":"run-1" , "status":"done", "event_time":"2026-01-01T10:00:00Z" }  ',
            "status: 'done' is not one of pending, running, completed, failed",
        ),
        6: (line(event(run_key=None, pipeline_id=424242)), "pipeline_id: 424242 is not a known"),
        7: (
            '{"run_key": "run-1", "stage_name": "étape", "status": "running", '
            '"event_time": "2026-01-01T10:00:00Z", "attempt": 0}'.encode(),
            "attempt: 0 is out of range",
        ),
    }
    data = b"\n".join(
        [line(first), bad_lines[2][0], bad_lines[3][0], line(second)]
        + [bad_lines[number][0] for number in (5, 6, 7)]
    )

    result = ingest(db, data)

    assert (result.accepted, result.duplicates, result.rejected) == (2, 0, 5)
    assert {str(row["event_id"]) for row in stored_events(db)} == {
        first["event_id"],
        second["event_id"],
    }
    rows = quarantined_lines(db)
    assert [row["line_number"] for row in rows] == sorted(bad_lines)
    for row in rows:
        raw, reason = bad_lines[row["line_number"]]
        assert row["origin"] == SOURCE
        assert bytes(row["raw_line"]) == raw
        assert reason in row["reason"]
    assert [str(rejection) for rejection in result.rejections] == [
        f"line {row['line_number']}: {row['reason']}" for row in rows
    ]


def test_events_are_stored_as_sent(db: Connection) -> None:
    """Tabs, newlines and backslashes must survive COPY's text format unchanged."""
    awkward = "tab\there\\nnot-a-newline\nnewline \\. \\\\ ünïcødé 😀"
    sent = event(
        pipeline_name="daily\tsales",
        stage_name=awkward,
        status="failed",
        event_time="2026-01-01T12:30:00.123456+02:00",
        records_processed=2**40,
        error_message=awkward,
        attempt=3,
        run_attempt=2,
        attributes={"stack": awkward, "nested": {"list": [1, 2.5, None, True]}},
    )

    assert ingest(db, line(sent)).accepted == 1

    [row] = stored_events(db)
    assert row == {
        "event_id": uuid.UUID(sent["event_id"]),
        "run_key": "run-1",
        "pipeline_name": "daily\tsales",
        "stage_name": awkward,
        "status": "failed",
        "event_time": datetime(2026, 1, 1, 10, 30, 0, 123456, tzinfo=UTC),
        "records_processed": 2**40,
        "error_message": awkward,
        "attempt": 3,
        "run_attempt": 2,
        "attributes": sent["attributes"],
    }


def test_lone_surrogate_line_is_quarantined_and_good_lines_still_land(db: Connection) -> None:
    """`\\ud800` is legal JSON but no UTF-8 text; the batch must not fail because of it."""
    good = event(pipeline_name="daily_sales")
    bad = line(event(pipeline_name="daily_sales", stage_name="x")).replace(b'"x"', b'"\\ud800"')

    result = ingest(db, line(good) + b"\n" + bad + b"\n")

    assert (result.accepted, result.rejected) == (1, 1)
    assert [row["line_number"] for row in quarantined_lines(db)] == [2]


@pytest.mark.parametrize("batch_lines", [10_000, 1], ids=["one-batch", "batch-per-line"])
def test_duplicate_event_id_in_a_file_counts_once_and_the_first_delivery_wins(
    db: Connection, batch_lines: int
) -> None:
    first = event(pipeline_name="daily_sales", records_processed=1)
    again = {**first, "records_processed": 2, "attributes": {"delivery": 2}}
    later = {**first, "status": "completed"}

    result = ingest(db, jsonl([first, again, later]), batch_lines=batch_lines)

    assert (result.accepted, result.duplicates, result.rejected) == (1, 2, 0)
    row = stored_event(db, first["event_id"])
    assert (row["status"], row["records_processed"], row["attributes"]) == ("running", 1, None)


def test_duplicate_of_an_already_stored_event_counts_once_and_keeps_the_stored_row(
    db: Connection,
) -> None:
    first = event(pipeline_name="daily_sales", status="completed", records_processed=10)
    assert ingest(db, jsonl([first])).accepted == 1

    redelivered = {**first, "records_processed": 99, "error_message": "late copy"}
    result = ingest(db, jsonl([redelivered, event(minute=1)]))

    assert (result.accepted, result.duplicates, result.rejected) == (1, 1, 0)
    row = stored_event(db, first["event_id"])
    assert (row["records_processed"], row["error_message"]) == (10, None)
    assert len(stored_events(db)) == 2


@pytest.mark.parametrize("batch_lines", [10_000, 3, 1])
def test_counts_add_up_to_the_non_blank_lines(db: Connection, batch_lines: int) -> None:
    named = event(pipeline_name="daily_sales")
    lines = [
        line(named),
        b"",
        line(named),  # duplicate
        b"not json",
        b"   ",
        line(event(stage_name="extract")),
        line(event(run_key="other-run")),  # new run, never named: parked
        b"\t",
        line({**named, "event_id": str(uuid.uuid4()), "pipeline_name": "weekly"}),
        line(event(stage_name="extract", status="completed", records_processed=3)),
        b"[]",
    ]
    result = ingest(db, b"\n".join(lines) + b"\n", batch_lines=batch_lines)

    non_blank = sum(1 for raw in lines if raw.strip())
    assert result.accepted + result.duplicates + result.rejected + result.parked == non_blank
    assert (result.accepted, result.duplicates, result.rejected, result.parked) == (3, 1, 3, 1)
    assert len(stored_events(db)) == result.accepted
    assert len(quarantined_lines(db)) == result.rejected


def test_blank_lines_are_skipped_but_counted_in_line_numbers(db: Connection) -> None:
    data = (
        b"\n"
        + line(event(pipeline_name="daily_sales"))
        + b"\r\n"
        + b"   \n"
        + b"\r\n"
        + b"{broken\r\n"
        + b"\n"
        + b"[1]"  # last line without a newline
    )

    result = ingest(db, data)

    assert (result.accepted, result.rejected) == (1, 2)
    rows = quarantined_lines(db)
    assert [(row["line_number"], bytes(row["raw_line"])) for row in rows] == [
        (5, b"{broken"),
        (7, b"[1]"),
    ]


def test_new_run_without_a_pipeline_name_in_its_batch_is_parked(db: Connection) -> None:
    """It waits for an event naming the run (tests/loader/test_parked.py), not quarantined."""
    result = ingest(
        db, jsonl([event(run_key="nameless"), event(run_key="named", pipeline_name="p")])
    )

    assert (result.accepted, result.parked, result.rejected) == (1, 1, 0)
    assert quarantined_lines(db) == []
    assert query(db, "select run_key from raw.runs") == [{"run_key": "named"}]
    assert query(db, "select run_key, line_number from raw.parked_events") == [
        {"run_key": "nameless", "line_number": 1}
    ]


def test_new_run_is_accepted_when_another_line_of_the_batch_names_it(db: Connection) -> None:
    events = [
        event(stage_name="extract"),
        event(minute=1),
        event(minute=2, pipeline_name="daily_sales"),
        event(minute=3, stage_name="extract", status="completed"),
    ]

    result = ingest(db, jsonl(events))

    assert (result.accepted, result.rejected) == (4, 0)
    assert {row["pipeline_name"] for row in stored_events(db)} == {"daily_sales"}


def test_a_name_in_an_earlier_batch_registers_the_run_for_later_batches(db: Connection) -> None:
    events = [event(pipeline_name="daily_sales"), event(minute=1), event(minute=2)]

    result = ingest(db, jsonl(events), batch_lines=1)

    assert (result.accepted, result.rejected) == (3, 0)


def test_a_name_only_in_a_later_batch_lands_the_earlier_events(db: Connection) -> None:
    """The earlier events wait parked until the batch that names their run."""
    events = [event(), event(minute=1, pipeline_name="daily_sales")]

    result = ingest(db, jsonl(events), batch_lines=1)

    assert (result.accepted, result.parked, result.unparked, result.rejected) == (1, 1, 1, 0)
    assert len(stored_events(db)) == 2


def test_known_run_is_reached_by_run_key_or_pipeline_id_without_a_name(db: Connection) -> None:
    ingest(db, jsonl([event(pipeline_name="daily_sales")]))
    known_id = pipeline_id(db, "run-1")

    result = ingest(
        db,
        jsonl(
            [
                event(minute=1, stage_name="extract"),
                event(run_key=None, pipeline_id=known_id, minute=2, stage_name="extract"),
                event(pipeline_id=known_id, minute=3, pipeline_name="daily_sales"),
            ]
        ),
    )

    assert (result.accepted, result.rejected) == (3, 0)
    assert {row["run_key"] for row in stored_events(db)} == {"run-1"}


def test_unknown_pipeline_id_is_rejected(db: Connection) -> None:
    ingest(db, jsonl([event(pipeline_name="daily_sales")]))
    unknown = pipeline_id(db, "run-1") + 1000

    result = ingest(db, jsonl([event(run_key=None, pipeline_id=unknown, pipeline_name="p")]))

    assert (result.accepted, result.rejected) == (0, 1)
    assert quarantined_lines(db)[0]["reason"] == f"pipeline_id: {unknown} is not a known run id"
    assert query(db, "select count(*) as n from raw.runs") == [{"n": 1}]


@pytest.mark.parametrize("by", ["run_key", "pipeline_id"])
def test_a_different_pipeline_name_for_a_known_run_is_rejected(db: Connection, by: str) -> None:
    ingest(db, jsonl([event(pipeline_name="daily_sales")]))
    known_id = pipeline_id(db, "run-1")
    address = (
        {"run_key": "run-1"} if by == "run_key" else {"run_key": None, "pipeline_id": known_id}
    )

    result = ingest(db, jsonl([event(minute=1, pipeline_name="weekly_sales", **address)]))

    assert (result.accepted, result.rejected) == (0, 1)
    assert quarantined_lines(db)[0]["reason"] == (
        "pipeline_name: 'weekly_sales' differs from 'daily_sales', "
        "the name this run was registered with"
    )


def test_two_names_for_a_new_run_in_one_batch_the_first_line_wins(db: Connection) -> None:
    events = [
        event(minute=1, pipeline_name="weekly_sales"),
        event(minute=0, pipeline_name="daily_sales"),
    ]

    result = ingest(db, jsonl(events))

    assert (result.accepted, result.rejected) == (1, 1)
    assert query(db, "select pipeline_name from raw.runs") == [{"pipeline_name": "weekly_sales"}]
    [row] = quarantined_lines(db)
    assert row["line_number"] == 2
    assert row["reason"].startswith("pipeline_name: 'daily_sales' differs from 'weekly_sales'")


def test_pipeline_id_and_run_key_that_disagree_are_rejected(db: Connection) -> None:
    ingest(db, jsonl([event("run-a", pipeline_name="p"), event("run-b", pipeline_name="p")]))
    id_a, id_b = pipeline_id(db, "run-a"), pipeline_id(db, "run-b")

    result = ingest(
        db,
        jsonl([event("run-a", minute=1, pipeline_id=id_b), event("run-a", pipeline_id=id_a)]),
    )

    assert (result.accepted, result.rejected) == (1, 1)
    [row] = quarantined_lines(db)
    assert row["line_number"] == 1
    assert (
        row["reason"] == f"pipeline_id: {id_b} does not match run_key 'run-a', which has id {id_a}"
    )


def test_pipeline_id_given_with_a_new_run_key_is_rejected(db: Connection) -> None:
    ingest(db, jsonl([event("run-a", pipeline_name="p")]))
    id_a = pipeline_id(db, "run-a")

    result = ingest(db, jsonl([event("run-new", pipeline_name="p", pipeline_id=id_a)]))

    assert (result.accepted, result.rejected) == (0, 1)
    assert quarantined_lines(db)[0]["reason"].startswith(f"pipeline_id: {id_a} does not match")
    assert {row["run_key"] for row in stored_events(db)} == {"run-a"}


def test_a_quarantined_event_registers_no_run(db: Connection) -> None:
    """Only a stored event may name a new run; else its later nameless events slip in."""
    ingest(db, jsonl([event("run-a", pipeline_name="p")]))
    id_a = pipeline_id(db, "run-a")
    ingest(db, jsonl([event("run-new", pipeline_name="p", pipeline_id=id_a)]))

    result = ingest(db, jsonl([event("run-new", minute=1)]))

    assert query(db, "select run_key from raw.runs") == [{"run_key": "run-a"}]
    assert (result.accepted, result.rejected, result.parked) == (0, 0, 1)


def test_a_quarantined_event_does_not_decide_the_name_of_a_new_run(db: Connection) -> None:
    ingest(db, jsonl([event("run-a", pipeline_name="p")]))
    id_a = pipeline_id(db, "run-a")
    events = [
        event("run-new", pipeline_name="wrong", pipeline_id=id_a),
        event("run-new", minute=1, pipeline_name="right"),
    ]

    result = ingest(db, jsonl(events))

    assert (result.accepted, result.rejected) == (1, 1)
    assert result.rejections[0].line_number == 1
    assert query(db, "select pipeline_name from raw.runs where run_key = 'run-new'") == [
        {"pipeline_name": "right"}
    ]


def test_run_and_stage_ids_are_stable_across_batches(db: Connection) -> None:
    ingest(
        db,
        jsonl(
            [
                event("run-a", pipeline_name="p", stage_name="extract"),
                event("run-b", pipeline_name="p", stage_name="extract"),
            ]
        ),
    )
    runs_before = {key: pipeline_id(db, key) for key in ("run-a", "run-b")}
    stages_before = stage_ids(db)

    ingest(
        db,
        jsonl(
            [
                event("run-c", pipeline_name="p", stage_name="extract"),
                event("run-b", minute=1, stage_name="extract", status="completed"),
                event("run-a", minute=1, stage_name="extract", status="completed"),
                event("run-a", minute=2, stage_name="load"),
            ]
        ),
    )

    assert {key: pipeline_id(db, key) for key in ("run-a", "run-b")} == runs_before
    stages_after = stage_ids(db)
    assert {key: stages_after[key] for key in stages_before} == stages_before
    assert len(stages_after) == 4
    assert len(set(stages_after.values())) == 4
    assert sorted(row["stage_name"] for row in stored_events(db)) == ["extract"] * 5 + ["load"]


def test_small_batches_give_the_same_result_as_one_batch(db: Connection) -> None:
    duplicate = event("run-b", minute=1, stage_name="load", records_processed=5)
    events = [
        event("run-a", pipeline_name="daily_sales"),
        event("run-b", pipeline_name="hourly_sync"),
        event("run-a", minute=1, stage_name="extract"),
        duplicate,
        event("run-a", minute=2, stage_name="extract", status="completed", records_processed=7),
        {**duplicate, "records_processed": 6},
        event("run-c", pipeline_name="daily_sales", stage_name="extract"),
        event("run-b", minute=3, stage_name="load", status="failed", error_message="boom"),
        event("run-a", minute=4, pipeline_name="other_name"),
        event("run-b", minute=4, stage_name="load", attempt=2),
        {**duplicate, "status": "completed"},
        event("run-c", minute=5, status="completed"),
    ]
    lines = [line(document) for document in events]
    lines[3:3] = [b"", b"{bad json"]
    lines[9:9] = [b'{"run_key": "run-a", "status": "running"}', b"   "]
    data = b"\n".join(lines) + b"\n"

    def load(batch_lines: int) -> tuple[Any, ...]:
        db.execute("truncate raw.run_events, raw.stages, raw.runs, raw.quarantined_events")
        result = ingest(db, data, batch_lines=batch_lines)
        rejections = [(item.line_number, item.reason, item.raw) for item in result.rejections]
        quarantine = [
            (row["line_number"], row["reason"], bytes(row["raw_line"]))
            for row in quarantined_lines(db)
        ]
        return result.accepted, result.duplicates, rejections, quarantine, stored_events(db)

    in_small_batches = load(3)
    in_one_batch = load(10_000)

    assert in_small_batches == in_one_batch
    accepted, duplicates, rejections, _, rows = in_one_batch
    assert (accepted, duplicates, len(rejections)) == (9, 2, 3)
    assert stored_event(db, duplicate["event_id"])["records_processed"] == 5
    assert len(rows) == 9


def test_write_batch_quarantines_rejections_even_without_candidates(db: Connection) -> None:
    rejections = [Rejection("status: missing", b"{}", 4), Rejection("not valid JSON", b"{", None)]

    result = write_batch(db, [], rejections, source="unit")

    assert (result.accepted, result.duplicates, result.rejected) == (0, 0, 2)
    rows = query(db, "select origin, line_number, reason, raw_line from raw.quarantined_events")
    assert sorted((row["line_number"] or 0, bytes(row["raw_line"])) for row in rows) == [
        (0, b"{"),
        (4, b"{}"),
    ]
    assert {row["origin"] for row in rows} == {"unit"}


def test_write_batch_needs_an_autocommit_connection(database: Settings, db: Connection) -> None:
    candidate = Candidate(parse_event(event(pipeline_name="p")), b"{}", 1)
    with connect(database) as conn, pytest.raises(ValueError, match="autocommit"):
        write_batch(conn, [candidate], source="unit")
    assert stored_events(db) == []


def test_a_small_batch_of_known_runs_lands_whole_in_one_statement_or_takes_the_full_path(
    db: Connection,
) -> None:
    """The resolved path inserts all of a small batch or none of it; counts stay exact."""
    ingest(db, jsonl([event("run-a", pipeline_name="p", stage_name="extract")]))
    known = [event("run-a", minute=n, stage_name="extract") for n in range(1, 4)]
    repeated = event("run-a", minute=5)

    landed = ingest(db, jsonl([*known, repeated, repeated]))
    assert (landed.accepted, landed.duplicates, landed.rejected) == (4, 1, 0)

    stored_again = event("run-a", minute=6)
    mixed = [stored_again, known[0], event("run-new", pipeline_name="q", stage_name="load")]
    result = ingest(db, jsonl(mixed))

    assert (result.accepted, result.duplicates, result.rejected) == (2, 1, 0)
    assert len(stored_events(db)) == 1 + 4 + 2


STORED_FIRST = "7d3b8f1e-8a57-4a8e-9d2c-2f1c7b7d1e01"
# A job's call is one event; each of these but the first needs the full path.
ONE_EVENT = {
    "of a registered run and stage": {"stage_name": "extract", "records_processed": 3},
    "of a registered run, by its name": {"pipeline_name": "p", "error_message": "é"},
    "with attributes": {"stage_name": "extract", "attributes": {"k": [1, "v"]}},
    "stored before": {"event_id": STORED_FIRST, "stage_name": "extract"},
    "of a new stage": {"stage_name": "load"},
    "with a name that differs": {"pipeline_name": "other"},
    "of a new run": {"run_key": "run-new", "pipeline_name": "q"},
    "of an unknown run": {"run_key": "run-unknown"},
}


def load_both_ways(db: Connection, documents: list[dict[str, Any]]) -> tuple[Any, ...]:
    """Load `documents` after a first event of run-a, as the writer would and by the full path
    alone; return both outcomes, the first statement tried, and whether the full path ran."""

    def load(*, full_path_only: bool) -> tuple[Any, ...]:
        db.execute("truncate raw.run_events, raw.stages, raw.runs, raw.quarantined_events")
        db.execute("truncate raw.parked_events")
        first = event("run-a", pipeline_name="p", stage_name="extract", event_id=STORED_FIRST)
        ingest(db, jsonl([first]))
        declined = mock.patch.object(writer, "_insert_resolved", return_value=-1)
        with (
            declined if full_path_only else nullcontext(),
            mock.patch.object(writer, "_store", wraps=writer._store) as full_path,
            mock.patch.object(db, "execute", wraps=db.execute) as executed,
        ):
            result = ingest(db, jsonl(documents))
        outcome = (result.accepted, result.duplicates, result.parked, result.rejected)
        quarantine = [(row["reason"], bytes(row["raw_line"])) for row in quarantined_lines(db)]
        tried = [call.args[0] for call in executed.call_args_list][:1]
        return outcome, stored_events(db), quarantine, (tried, full_path.called)

    *ours, (tried, took_full_path) = load(full_path_only=False)
    *full, _ = load(full_path_only=True)
    return ours, full, tried, took_full_path


@pytest.mark.parametrize("fields", ONE_EVENT.values(), ids=list(ONE_EVENT))
def test_one_event_lands_by_the_one_row_statement_as_the_full_path_would(
    db: Connection, fields: dict[str, Any]
) -> None:
    ours, full, tried, took_full_path = load_both_ways(db, [{**event("run-a", minute=1), **fields}])

    assert ours == full
    assert tried == [writer._INSERT_ONE_RESOLVED]
    assert took_full_path == (list(ONE_EVENT.values()).index(fields) >= 3)


# A group (the collector's group commit, `Ledger.emit_many`) travels as one JSON document:
# values of every kind must come out as the full path stores them.
IN_A_GROUP = {
    **ONE_EVENT,
    "with attributes of every JSON kind": {
        "stage_name": "extract",
        "attributes": {
            "past 64 bits": 10**30,
            "floats": [0.1, 1e-7, -2.5e300, 3.0],
            "text": 'caf\u00e9 \U0001f600 "q" \\ \n',
            "nested": [None, True, False, {"k": [], "": {}}],
        },
    },
    "at another offset, to the microsecond": {
        "stage_name": "extract",
        "event_time": "2026-03-01T04:00:00.123456+02:00",
        "records_processed": 2**63 - 1,
        "attempt": 2**31 - 1,
    },
}


@pytest.mark.parametrize("fields", IN_A_GROUP.values(), ids=list(IN_A_GROUP))
def test_a_group_lands_by_the_group_statement_as_the_full_path_would(
    db: Connection, fields: dict[str, Any]
) -> None:
    group = [
        {**event("run-a", minute=1), **fields},
        event("run-a", minute=2, stage_name="extract", attributes={"n": 1}),
        event("run-a", minute=3),
    ]

    ours, full, tried, took_full_path = load_both_ways(db, group)

    assert ours == full
    assert tried == [writer._INSERT_RESOLVED]
    assert took_full_path == (fields in list(ONE_EVENT.values())[3:])


@pytest.mark.parametrize("size", [1, 3, 60])
def test_a_batch_of_known_runs_locks_its_own_runs_and_no_others(db: Connection, size: int) -> None:
    """With a hundred runs and 20,000 events registered, the one-statement path locks only
    the runs it names: a plan that hashed the registry called the lock on every run."""
    history = [event(f"run-{n % 100}", minute=n, pipeline_name="p") for n in range(20_000)]
    ingest(db, jsonl(history))
    documents = [event(f"run-{n % 2}", minute=n) for n in range(size)]
    candidates = [Candidate(parse_event(document), b"", n) for n, document in enumerate(documents)]

    with db.transaction():
        inserted = writer._insert_resolved(db, candidates)
        [(locked,)] = db.execute(
            "select count(*) from pg_catalog.pg_locks"
            " where locktype = 'advisory' and pid = pg_catalog.pg_backend_pid()"
        ).fetchall()

    assert inserted == size
    assert locked == min(size, 2)


def test_a_report_gets_each_rejection_in_line_order_once_its_batch_landed(
    db: Connection,
) -> None:
    lines = [line(event("run-r", minute=n, pipeline_name="r")) for n in range(9)]
    for number in (2, 5, 6):
        lines[number - 1] = b'{"run_key": "run-r", "status": "bogus"}'
    lines[7] = b"x" * 400  # over the cap below
    data = b"\n".join(lines) + b"\n"
    stored: list[int] = []

    def report(rejection: Rejection) -> None:
        stored.append(len(quarantined_lines(db)))  # its batch has landed
        reported.append(rejection)

    reported: list[Rejection] = []
    result = ingest_stream(
        db, io.BytesIO(data), source=SOURCE, batch_lines=3, max_line_bytes=300, report=report
    )
    db.execute("truncate raw.run_events, raw.stages, raw.runs, raw.quarantined_events")
    kept = ingest_stream(db, io.BytesIO(data), source=SOURCE, batch_lines=3, max_line_bytes=300)

    assert reported == kept.rejections
    assert [rejection.line_number for rejection in reported] == [2, 5, 6, 8]
    assert stored == [1, 3, 3, 4]
    assert (result.rejections, result.reported, result.rejected) == ([], 4, kept.rejected)
    assert (result.accepted, result.parked) == (kept.accepted, kept.parked) == (5, 0)
