"""The contract's RunEvent rules, end to end: random run trees through the loader and dbt.

Random OpenLineage histories (a run's child jobs retried under new runIds, ABORTs, SQL-like
activity below a stage, a command that ran inside a task with and without a root, so that
its run is absorbed) arrive in random order and batches with a build after each; the
tables must equal the independent rules (`tests/support/contract_rules.py`) and a full
refresh.
"""

from __future__ import annotations

import io
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from loader.connection import Connection
from loader.events import parse_event
from loader.ingest import ingest_stream
from tests.dbt.test_derivation import tables, without_ids
from tests.support import BUILD_LEDGER_TABLES, clear_built
from tests.support.contract_rules import Delivery, derive_tables

T0 = datetime(2026, 2, 1, 8, 0, tzinfo=UTC)
NAMESPACE = "jobs"
RunDbt = Any  # the run_dbt fixture


def run_id(*parts: object) -> str:
    """A fixed runId per name: the same node is the same runId in every event."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join(map(str, parts))))


def run_event(
    event_type: str,
    job: str,
    own: str,
    minute: int,
    *,
    parent: tuple[str, str] | None = None,
    root: tuple[str, str] | None = None,
    airflow: dict[str, Any] | None = None,
) -> dict[str, Any]:
    facets: dict[str, Any] = dict(airflow or {})
    if parent is not None:
        facets["parent"] = {
            "run": {"runId": parent[0]},
            "job": {"namespace": NAMESPACE, "name": parent[1]},
        }
        if root is not None:
            facets["parent"]["root"] = {
                "run": {"runId": root[0]},
                "job": {"namespace": NAMESPACE, "name": root[1]},
            }
    if event_type == "FAIL":
        facets["errorMessage"] = {"message": f"{job} failed", "programmingLanguage": "python"}
    return {
        "eventType": event_type,
        "eventTime": (T0 + timedelta(minutes=minute)).isoformat(),
        "run": {"runId": own, "facets": facets},
        "job": {"namespace": NAMESPACE, "name": job},
        "producer": "https://example.com/property-tests",
    }


_minutes = st.integers(min_value=0, max_value=6)
_ends = st.sampled_from([None, "COMPLETE", "FAIL", "ABORT"])


@st.composite
def node_events(
    draw: st.DrawFn,
    job: str,
    own: str,
    parent: tuple[str, str] | None,
    root: tuple[str, str] | None,
    *,
    airflow: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """A node's START and perhaps its end (or, sometimes, only its end)."""
    start = draw(_minutes)
    end = draw(_ends)
    where: dict[str, Any] = {"parent": parent, "root": root, "airflow": airflow}
    events = [] if draw(st.integers(0, 5)) == 0 and end else [
        run_event("START", job, own, start, **where)
    ]  # fmt: skip
    if end is not None:
        events.append(run_event(end, job, own, start + draw(st.integers(0, 3)), **where))
    return events


@st.composite
def airflow_dag_run(draw: st.DrawFn, dag: str) -> list[dict[str, Any]]:
    """An Airflow DAG run, perhaps cleared and re-run: tasks with try numbers, a mapped
    task, and a command inside a task that names the first DAG runId as its root (so
    its run is absorbed into the DAG run, keyed by its Airflow run_id)."""
    events: list[dict[str, Any]] = []
    first = run_id(dag, "clear", 0)
    for clear in range(draw(st.integers(1, 2))):
        dag_run = {"dag_id": dag, "run_id": "scheduled_1", "clear_number": clear}
        own = run_id(dag, "clear", clear)
        dag_facets = {"airflowDagRun": {"dagRun": dag_run}}
        events += draw(node_events(dag, own, None, None, airflow=dag_facets))
        tasks = st.sampled_from([("extract", None), ("partition", 0), ("partition", 1)])
        for job, map_index in draw(st.sets(tasks, min_size=1)):
            for try_number in range(1, draw(st.integers(1, 2)) + 1):
                task = run_id(dag, job, map_index, try_number, clear)
                instance = {"try_number": try_number, "map_index": map_index}
                facets = {"airflow": {"dagRun": dag_run, "taskInstance": instance}}
                name = f"{dag}.{job}"
                events += draw(node_events(name, task, (own, dag), (own, dag), airflow=facets))
                if draw(st.booleans()):
                    events += draw(node_events("command", run_id(task, "command"),
                                               (task, name), (first, dag)))  # fmt: skip
    return events


@st.composite
def histories(draw: st.DrawFn) -> list[dict[str, Any]]:
    """One or two flows: child jobs with tries, activity below them, nested commands;
    and perhaps an Airflow DAG run."""
    events: list[dict[str, Any]] = []
    if draw(st.booleans()):
        events += draw(airflow_dag_run("dag_c"))
    for flow in draw(st.sets(st.sampled_from(["flow_a", "flow_b"]), min_size=1)):
        flow_run = run_id(flow)
        flow_ref = (flow_run, flow)
        events += draw(node_events(flow, flow_run, None, None))
        for job in draw(st.sets(st.sampled_from(["extract", "load"]), min_size=1)):
            for attempt in range(draw(st.integers(1, 3))):
                task = run_id(flow, job, attempt)
                events += draw(node_events(job, task, flow_ref, flow_ref))
                nesting = draw(st.sampled_from(["none", "statement", "command", "rootless"]))
                if nesting == "statement":  # activity: parent = the task, root = the flow
                    events += draw(node_events(f"{job}.sql", run_id(task, "sql"), (task, job),
                                               flow_ref))  # fmt: skip
                elif nesting in ("command", "rootless"):
                    # A command inside the task, and a node of the command: with a root,
                    # activity homed through the command; without, the task's run key is
                    # absorbed into the flow once the task's own events are in.
                    command = run_id(task, "command")
                    command_root = flow_ref if nesting == "command" else (task, job)
                    events += draw(node_events("command", command, (task, job), command_root))
                    events += draw(node_events("node", run_id(command, "node"),
                                               (command, "command"), command_root))  # fmt: skip
    return events


def delivery(document: dict[str, Any]) -> Delivery:
    """What the rules see of a RunEvent: the loader's mapping of it."""
    event = parse_event(document)
    attributes = dict(event.attributes or {})
    assert event.run_key is not None
    parent = document["run"]["facets"].get("parent")
    return Delivery(
        event_id=event.event_id,
        run_key=event.run_key,
        stage_name=event.stage_name,
        status=event.status,
        event_time=event.event_time,
        records_processed=event.records_processed,
        error_message=event.error_message,
        attempt=event.attempt,
        run_attempt=event.run_attempt,
        placement=attributes["openlineage_placement"],
        source_run_id=document["run"]["runId"],
        source_parent_run_id=parent["run"]["runId"] if parent else None,
        is_aborted=document["eventType"] == "ABORT",
    )


@settings(
    max_examples=6,
    deadline=None,
    # Each example costs several dbt runs: report the failing example unshrunk.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=histories(), data=st.data())
@pytest.mark.pg15
def test_run_trees_in_any_order_and_batches_give_the_contract_tables(
    db: Connection, run_dbt: RunDbt, history: list[dict[str, Any]], data: st.DataObject
) -> None:
    clear_built(db)
    if not history:
        return
    arrival = data.draw(st.permutations(history))
    repeated = data.draw(st.lists(st.sampled_from(history), max_size=3))
    arrival = arrival + repeated
    cuts = sorted(data.draw(st.sets(st.integers(1, len(arrival)), max_size=2)))
    bounds = zip([0, *cuts], [*cuts, len(arrival)], strict=True)
    for start, end in bounds:
        if start < end:
            lines = b"".join(json.dumps(d).encode() + b"\n" for d in arrival[start:end])
            assert ingest_stream(db, io.BytesIO(lines), source="history").rejected == 0
            run_dbt(*BUILD_LEDGER_TABLES)

    expected_runs, expected_stages = derive_tables(delivery(d) for d in arrival)
    incremental = tables(db)
    assert without_ids(incremental[0]) == expected_runs
    assert without_ids(incremental[1]) == expected_stages

    run_dbt(*BUILD_LEDGER_TABLES, "--full-refresh")
    assert tables(db) == incremental
