"""The event contract's derivation rules, written plainly in Python: the oracle for dbt.

Each function follows one section of `docs/event-contract.md`, rule by rule, with no SQL in
sight, so that the property tests compare two independent implementations.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

PRECEDENCE = {"pending": 1, "running": 2, "completed": 3, "failed": 4}
TERMINAL = frozenset({"completed", "failed"})


@dataclass(frozen=True)
class Delivery:
    """One delivered event, as a job sent it."""

    event_id: UUID
    run_key: str
    stage_name: str | None
    status: str
    event_time: datetime
    records_processed: int | None = None
    error_message: str | None = None
    attempt: int = 1
    run_attempt: int = 1


def first_deliveries(deliveries: Iterable[Delivery]) -> list[Delivery]:
    """Drop repeated event_ids; the first delivery wins."""
    seen: dict[UUID, Delivery] = {}
    for delivery in deliveries:
        seen.setdefault(delivery.event_id, delivery)
    return list(seen.values())


def _ordered(events: Iterable[Delivery]) -> list[Delivery]:
    """Rule 2's order: by event_time, ties by precedence (highest first), then event_id."""
    return sorted(events, key=lambda e: (e.event_time, -PRECEDENCE[e.status], e.event_id))


def _final_terminal(ordered: Sequence[Delivery]) -> tuple[int, Delivery] | None:
    """The first terminal event, which nothing after it can change."""
    return next(((index, e) for index, e in enumerate(ordered) if e.status in TERMINAL), None)


def derive_stage(events: Sequence[Delivery]) -> dict[str, Any]:
    """One row of pipeline_stages from the stage's (deduplicated) events."""
    # Rule 1: the highest (run_attempt, attempt) pair decides; a retried flow's tasks
    # count their tries from 1 again.
    run_attempt, attempts = max((e.run_attempt, e.attempt) for e in events)
    ordered = _ordered(e for e in events if (e.run_attempt, e.attempt) == (run_attempt, attempts))
    terminal = _final_terminal(ordered)
    if terminal is None:
        status = "running" if any(e.status == "running" for e in ordered) else "pending"
        considered = ordered
    else:
        status = terminal[1].status
        considered = ordered[: terminal[0] + 1]
    records = terminal[1].records_processed if terminal else None
    if records is None:
        records = max(
            (e.records_processed for e in considered if e.records_processed is not None),
            default=None,
        )
    return {
        "status": status,
        "error_message": terminal[1].error_message if status == "failed" and terminal else None,
        "records_processed": records,
        "started_at": min((e.event_time for e in events if e.status == "running"), default=None),
        "completed_at": terminal[1].event_time if terminal else None,
        "attempts": attempts,
        "run_attempt": run_attempt,
    }


def derive_run(events: Sequence[Delivery], stages: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One row of pipelines from the run's events and its derived stages (by name)."""
    # Only the highest run attempt decides, stage events included; so do only the stages
    # whose deciding events belong to it.
    attempts = max(e.run_attempt for e in events)
    current = [e for e in events if e.run_attempt == attempts]
    stages = {name: s for name, s in stages.items() if s["run_attempt"] == attempts}
    run_level = _ordered(e for e in current if e.stage_name is None)
    terminal = _final_terminal(run_level)
    if terminal is not None:
        status = terminal[1].status
    elif any(e.status == "running" for e in run_level) or any(
        e.stage_name is not None and e.status != "pending" for e in current
    ):
        status = "running"
    else:
        status = "pending"

    records = terminal[1].records_processed if terminal else None
    if records is None and status == "completed":
        finished = [s for s in stages.values() if s["completed_at"] is not None]
        if finished:
            last = max(
                finished,
                key=lambda s: (s["completed_at"], _nulls_first(s["records_processed"])),
            )
            records = last["records_processed"]

    error = None
    if status == "failed":
        assert terminal is not None
        error = terminal[1].error_message
        failed = [(name, s) for name, s in stages.items() if s["status"] == "failed"]
        if error is None and failed:
            name, first = min(failed, key=lambda item: (item[1]["completed_at"], item[0]))
            if first["error_message"] is not None:
                error = f"{name}: {first['error_message']}"

    return {
        "status": status,
        "created_at": min(e.event_time for e in events),
        "completed_at": terminal[1].event_time if terminal else None,
        "records_processed": records,
        "error_message": error,
        "attempts": attempts,
    }


def _nulls_first(value: int | None) -> tuple[int, int]:
    return (0, 0) if value is None else (1, value)


def derive_tables(
    deliveries: Iterable[Delivery],
) -> tuple[dict[str, dict[str, Any]], dict[tuple[str, str], dict[str, Any]]]:
    """Both tables, keyed by run_key and by (run_key, stage_name)."""
    events = first_deliveries(deliveries)
    by_stage: dict[tuple[str, str], list[Delivery]] = {}
    by_run: dict[str, list[Delivery]] = {}
    for e in events:
        by_run.setdefault(e.run_key, []).append(e)
        if e.stage_name is not None:
            by_stage.setdefault((e.run_key, e.stage_name), []).append(e)
    stages = {key: derive_stage(stage_events) for key, stage_events in by_stage.items()}
    runs = {
        run_key: derive_run(
            run_events,
            {name: row for (key, name), row in stages.items() if key == run_key},
        )
        for run_key, run_events in by_run.items()
    }
    return runs, stages
