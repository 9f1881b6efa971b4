"""The event contract's derivation rules, written plainly in Python: the oracle for dbt.

Each function follows one section of `docs/event-contract.md`, rule by rule, with no SQL in
sight, so that the property tests compare two independent implementations.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
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
    # An OpenLineage RunEvent's: where the loader put it, its own and its parent's runId,
    # and whether it is an ABORT (docs/event-contract.md, "OpenLineage RunEvents").
    placement: str | None = None
    source_run_id: str | None = None
    source_parent_run_id: str | None = None
    is_aborted: bool = False


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


def _numbered(events: Sequence[Delivery]) -> list[Delivery]:
    """A stage's events with the attempts the contract gives RunEvents.

    A child job's tries are its runIds, numbered by when each began (ties by runId) within
    a run attempt; activity (deeper than the stage) ranks below every attempt (0) and
    counts as running, with no records and no error.
    """
    began: dict[str, datetime] = {}
    tries: dict[int, set[tuple[datetime, str]]] = {}
    for e in events:
        if e.placement == "stage" and e.source_run_id is not None:
            began[e.source_run_id] = min(began.get(e.source_run_id, e.event_time), e.event_time)
    for e in events:
        if e.placement == "stage" and e.source_run_id is not None:
            tries.setdefault(e.run_attempt, set()).add((began[e.source_run_id], e.source_run_id))
    ordered = {run_attempt: sorted(runs) for run_attempt, runs in tries.items()}
    numbered = []
    for event in events:
        if event.placement == "activity":
            event = replace(  # noqa: PLW2901  # the event as the rules see it
                event, attempt=0, status="running", records_processed=None, error_message=None
            )
        elif event.placement == "stage" and event.source_run_id is not None:
            own = (began[event.source_run_id], event.source_run_id)
            attempt = ordered[event.run_attempt].index(own) + 1
            event = replace(event, attempt=attempt)  # noqa: PLW2901
        numbered.append(event)
    return numbered


def derive_stage(events: Sequence[Delivery]) -> dict[str, Any]:
    """One row of pipeline_stages from the stage's (deduplicated) events."""
    events = _numbered(events)
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
        "attempts": max(attempts, 1),
        "run_attempt": run_attempt,
        "is_aborted": terminal is not None and terminal[1].is_aborted,
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
        # Rule 3's fallback: the latest-completed stage that reported a count.
        finished = [
            s
            for s in stages.values()
            if s["completed_at"] is not None and s["records_processed"] is not None
        ]
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
        failed = [
            (name, s)
            for name, s in stages.items()
            if s["status"] == "failed" and not s["is_aborted"]
        ]
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
        "is_aborted": terminal is not None and terminal[1].is_aborted,
    }


def _homed(events: list[Delivery]) -> list[Delivery]:
    """Every event in the run and stage it belongs to once the OpenLineage tree is known.

    A run key that is the runId of events recorded in another run is absorbed: into that
    run under the same stage names when they were run-level there (the same run under
    another key), else as activity of their stage. Then activity whose parent is activity
    of the same run belongs to the stage of its topmost such ancestor.
    """
    homes: dict[str, tuple[str, str | None]] = {}
    for e in events:
        if e.source_run_id is not None and e.source_run_id != e.run_key:
            homes.setdefault(e.source_run_id, (e.run_key, e.stage_name))
    absorbed = []
    for e in events:
        home = homes.get(e.run_key)
        if home is None:
            absorbed.append(e)
        elif home[1] is None:
            absorbed.append(replace(e, run_key=home[0]))
        else:
            absorbed.append(replace(e, run_key=home[0], stage_name=home[1], placement="activity"))
    activity = {
        (e.run_key, e.source_run_id): (e.source_parent_run_id, e.stage_name)
        for e in absorbed
        if e.placement == "activity"
    }

    def top_stage(run_key: str, run_id: str | None) -> str | None:
        """The stage of the topmost activity ancestor; parents naming each other: its own."""
        seen = [run_id]
        parent, stage = activity[(run_key, run_id)]
        while (run_key, parent) in activity:
            if parent in seen:
                return activity[(run_key, run_id)][1]
            seen.append(parent)
            parent, stage = activity[(run_key, parent)]
        return stage

    return [
        replace(e, stage_name=top_stage(e.run_key, e.source_run_id))
        if e.placement == "activity"
        else e
        for e in absorbed
    ]


def _nulls_first(value: int | None) -> tuple[int, int]:
    return (0, 0) if value is None else (1, value)


def derive_tables(
    deliveries: Iterable[Delivery],
) -> tuple[dict[str, dict[str, Any]], dict[tuple[str, str], dict[str, Any]]]:
    """Both tables, keyed by run_key and by (run_key, stage_name)."""
    events = _homed(first_deliveries(deliveries))
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
