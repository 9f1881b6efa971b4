"""Hostile bulk files against a real PostgreSQL: every bad line quarantined byte for byte
with a reason naming its field, every good line beside it stored, nothing crashes.

The corpus is tests/support/hostile_corpus.py; each of its lines is followed by a good line.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from loader.connection import Connection
from loader.contract import FIELDS
from loader.errors import BadEventError
from loader.events import parse_line
from loader.ingest import ingest_stream
from loader.settings import Settings
from tests.support import quarantined_lines, query, stored_events
from tests.support.hostile_corpus import (
    ACCEPTED,
    CASES,
    DUPLICATE,
    GOOD_PIPELINE,
    GOOD_RUN,
    PARKED,
    QUARANTINED,
    SKIPPED,
    SQL,
    SQL_RUN,
    Case,
)

EXIT_REJECTED = 2
# The longest reason the loader may give: two quoted names of 200 characters and some words.
MAX_REASON_LENGTH = 1000
T0 = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)


@dataclass(frozen=True)
class HostileFile:
    """The corpus written as one bulk file, each case followed by a good line."""

    data: bytes
    cases: dict[int, Case]
    """Line number → the case on that line."""
    good: dict[int, str]
    """Line number → the event_id of the good line there."""

    def numbers(self, outcome: str) -> list[int]:
        return [number for number, case in self.cases.items() if case.outcome == outcome]


def good_event(index: int) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"good-{index}")),
        "run_key": GOOD_RUN,
        "pipeline_name": GOOD_PIPELINE,
        "stage_name": "extract" if index % 2 else None,
        "status": "running",
        "event_time": (T0 + timedelta(seconds=index)).isoformat(),
    }


def hostile_file() -> HostileFile:
    lines: list[bytes] = []
    cases: dict[int, Case] = {}
    good: dict[int, str] = {}
    for index, case in enumerate(CASES):
        lines.append(case.raw)
        cases[len(lines)] = case
        document = good_event(index)
        lines.append(json.dumps(document).encode())
        good[len(lines)] = document["event_id"]
    return HostileFile(b"\n".join(lines) + b"\n", cases, good)


def stored_rows(db: Connection) -> list[dict[str, Any]]:
    return [{**row, "event_id": str(row["event_id"])} for row in stored_events(db)]


def stored_row_of(rows: list[dict[str, Any]], case: Case) -> dict[str, Any]:
    """The row of an accepted case: by its event_id, or by its stage when the id was made."""
    assert case.stored is not None
    event_id, stage_name = case.stored["event_id"], case.stored["stage_name"]
    found = [
        row
        for row in rows
        if (row["event_id"] == event_id if event_id else row["stage_name"] == stage_name)
    ]
    assert len(found) == 1, case.name
    return found[0]


def assert_verdicts(db: Connection, hostile: HostileFile, counts: tuple[int, int, int]) -> None:
    """What the database holds after loading `hostile` into an empty raw schema."""
    accepted = [hostile.cases[number] for number in hostile.numbers(ACCEPTED)]
    quarantined = hostile.numbers(QUARANTINED)
    parked = hostile.numbers(PARKED)
    non_blank = len(hostile.good) + len(hostile.cases) - len(hostile.numbers(SKIPPED))

    assert counts == (
        len(hostile.good) + len(accepted),
        len(hostile.numbers(DUPLICATE)),
        len(quarantined),
    )
    assert sum(counts) + len(parked) == non_blank
    waiting = query(db, "select line_number, raw_line from raw.parked_events order by 1")
    assert [(row["line_number"], bytes(row["raw_line"])) for row in waiting] == [
        (number, hostile.cases[number].raw) for number in parked
    ]

    rows = stored_rows(db)
    assert len(rows) == counts[0]
    assert set(hostile.good.values()) <= {row["event_id"] for row in rows}
    for case in accepted:
        assert case.stored is not None
        row = stored_row_of(rows, case)
        # The first delivery wins: the redelivered case changed its status, not this row.
        assert row == {**case.stored, "event_id": case.stored["event_id"] or row["event_id"]}
    [generated] = [case for case in accepted if case.stored and not case.stored["event_id"]]
    assert uuid.UUID(stored_row_of(rows, generated)["event_id"]).version == 7

    rows = quarantined_lines(db)
    assert [row["line_number"] for row in rows] == quarantined
    for row in rows:
        case = hostile.cases[row["line_number"]]
        assert case.reason in row["reason"], (case.name, row["reason"])
        assert len(row["reason"]) <= MAX_REASON_LENGTH, case.name
        assert bytes(row["raw_line"]) == case.raw, case.name

    # The names that look like SQL were parameters: stored verbatim, nothing dropped.
    assert query(db, "select to_regclass('raw.run_events') is not null as exists") == [
        {"exists": True}
    ]
    assert query(db, "select pipeline_name from raw.runs where run_key = %s", [SQL_RUN]) == [
        {"pipeline_name": SQL}
    ]
    assert query(db, "select count(*) as n from raw.stages where stage_name = %s", [SQL]) == [
        {"n": 1}
    ]


def ledger_ingest(database: Settings, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loader", "ingest", str(path)],
        env={**os.environ, **database.as_env()},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_corpus_is_one_line_per_case_and_covers_every_field() -> None:
    names = [case.name for case in CASES]
    assert len(set(names)) == len(names)
    quarantined = [case for case in CASES if case.outcome == QUARANTINED]
    assert len(quarantined) >= 50
    for case in CASES:
        assert b"\n" not in case.raw, case.name
        if case.outcome == SKIPPED:
            assert not case.raw.strip(), case.name
        else:
            # ingest strips the line ending: the quarantine must see every byte of these.
            assert not case.raw.endswith(b"\r"), case.name
            assert case.raw.strip(), case.name
        assert bool(case.reason) == (case.outcome == QUARANTINED), case.name
        assert (case.stored is not None) == (case.outcome == ACCEPTED), case.name
    named = {case.reason.partition(":")[0] for case in quarantined}
    assert set(FIELDS) <= named


def test_cli_quarantines_each_hostile_line_and_stores_each_good_one(
    database: Settings, db: Connection, tmp_path: Path
) -> None:
    """One batch (with more than 100 events, so the loader COPYs them)."""
    hostile = hostile_file()
    path = tmp_path / "hostile.jsonl"
    path.write_bytes(hostile.data)

    result = ledger_ingest(database, path)

    assert result.returncode == EXIT_REJECTED, result.stderr[-2000:]
    match = re.fullmatch(
        rf"{re.escape(str(path))}: (\d+) accepted, (\d+) duplicate, (\d+) rejected[,\w ():`]*\n",
        result.stdout,
    )
    assert match, result.stdout
    accepted, duplicates, rejected = (int(number) for number in match.groups())
    assert_verdicts(db, hostile, (accepted, duplicates, rejected))

    # One stderr line per rejected line: the file, the line number and the reason (which
    # names the field), exactly as quarantined.
    reported = result.stderr.splitlines()
    quarantine = quarantined_lines(db)
    assert reported == [f"{path}: line {row['line_number']}: {row['reason']}" for row in quarantine]


@pytest.mark.parametrize("batch_lines", [1, 5])
def test_small_batches_give_the_same_verdicts(db: Connection, batch_lines: int) -> None:
    """One line per batch takes the one-statement path for good lines; five, the small path."""
    hostile = hostile_file()

    result = ingest_stream(
        db, io.BytesIO(hostile.data), source="hostile.jsonl", batch_lines=batch_lines
    )

    assert_verdicts(db, hostile, (result.accepted, result.duplicates, result.rejected))
    assert [(item.line_number, item.raw) for item in result.rejections] == [
        (number, hostile.cases[number].raw) for number in hostile.numbers(QUARANTINED)
    ]


@pytest.mark.parametrize(
    "field", ["records_processed", "pipeline_id", "attempt", "status", "event_id", "attributes"]
)
def test_values_nested_up_to_the_parsers_limit_get_a_verdict(field: str) -> None:
    """The parser accepts nesting up to the recursion limit; a value nested just below it
    used to crash `parse_line` with RecursionError when a reason showed it (json.dumps,
    repr). Every depth must give an Event or a BadEventError, whatever the stack depth."""
    valid = {"run_key": "r", "status": "running", "event_time": "2026-01-01T10:00:00Z"}
    others = json.dumps({key: value for key, value in valid.items() if key != field})
    for depth in range(1, sys.getrecursionlimit() + 10):
        value = "[" * depth + "]" * depth
        raw = f'{others[:-1]}, "{field}": {value}}}'.encode()
        with pytest.raises(BadEventError) as caught:
            parse_line(raw)
        assert caught.value.field in {field, None}, depth
