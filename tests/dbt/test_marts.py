"""The history marts, end to end: events through the loader, marts from dbt, as of a fixed now."""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from loader.connection import Connection
from tests.support import clear_built, query

pytestmark = pytest.mark.pg15

AS_OF = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
BUILD = ("run", "--vars", json.dumps({"as_of": AS_OF.isoformat()}))
MARTS = (
    "dim_pipelines",
    "fct_pipeline_runs",
    "fct_stage_runs",
    "pipeline_daily",
    "stage_daily",
    "failure_reasons",
    "run_anomalies",
    "pipeline_health",
)
# What differs between two builds of the same events: when they ran.
BUILD_COLUMNS = frozenset({"_load_watermark", "_measured_watermark"})


def ago(**delta: float) -> datetime:
    return AS_OF - timedelta(**delta)


def event(
    run_key: str,
    status: str,
    at: datetime,
    *,
    stage: str | None = None,
    pipeline: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    return {
        "run_key": run_key,
        "pipeline_name": pipeline or run_key.split("@", maxsplit=1)[0],
        "stage_name": stage,
        "status": status,
        "event_time": at.isoformat(),
        **fields,
    }


def finished_run(
    run_key: str,
    start: datetime,
    *,
    minutes: float = 10,
    status: str = "completed",
    records: int | None = None,
    failing_stage: str | None = None,
    error: str = "boom",
) -> list[dict[str, Any]]:
    """A run with one stage that starts a minute after the run and ends with it."""
    end = start + timedelta(minutes=1 + minutes)
    stage = failing_stage or "load"
    stage_status = "failed" if failing_stage else "completed"
    return [
        event(run_key, "pending", start),
        event(run_key, "running", start + timedelta(minutes=1), stage=stage),
        event(
            run_key,
            stage_status,
            end,
            stage=stage,
            records_processed=records,
            error_message=error if failing_stage else None,
        ),
        event(run_key, status, end, records_processed=records),
    ]


def mart(conn: Connection, name: str, where: str = "true") -> list[dict[str, Any]]:
    rows = query(conn, f"select * from marts.{name} where {where}")
    return sorted(
        ({k: v for k, v in row.items() if k not in BUILD_COLUMNS} for row in rows),
        key=lambda row: json.dumps(row, default=str, sort_keys=True),
    )


def one(conn: Connection, name: str, where: str) -> dict[str, Any]:
    [row] = mart(conn, name, where)
    return row


def percentile_cont(values: Sequence[float], fraction: float) -> float:
    """PostgreSQL's percentile_cont: linear interpolation between the closest ranks."""
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    lower, upper = math.floor(position), math.ceil(position)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


# fct_pipeline_runs and fct_stage_runs ---------------------------------------------------


def test_run_timings_count_from_the_first_running_event(ledger, db, run_dbt):
    start = ago(days=1)
    ledger.emit_many(
        [
            event("daily_sales@1", "pending", start),
            event("daily_sales@1", "running", start + timedelta(minutes=3), stage="extract"),
            event(
                "daily_sales@1",
                "failed",
                start + timedelta(minutes=5),
                stage="extract",
                error_message="timeout",
            ),
            event(
                "daily_sales@1", "running", start + timedelta(minutes=6), stage="extract", attempt=2
            ),
            event(
                "daily_sales@1",
                "completed",
                start + timedelta(minutes=9),
                stage="extract",
                attempt=2,
                records_processed=300,
            ),
            event("daily_sales@1", "completed", start + timedelta(minutes=13), stage="publish"),
            event("daily_sales@1", "completed", start + timedelta(minutes=13)),
            # A heartbeat stamped after the run ended does not start it later or earlier.
            event("daily_sales@1", "running", start + timedelta(minutes=20), stage="late"),
        ]
    )
    run_dbt(*BUILD)

    run = one(db, "fct_pipeline_runs", "run_key = 'daily_sales@1'")
    assert run["started_at"] == start + timedelta(minutes=3)
    assert run["queued_seconds"] == 180
    assert run["duration_seconds"] == 600
    assert (run["stage_count"], run["retry_count"], run["failed_stage_count"]) == (3, 1, 0)
    assert run["failed_stage_name"] is None
    assert run["run_date"] == start.date()
    assert run["owner"] == "sales-analytics"  # seeds/pipeline_catalog.csv
    extract = one(db, "fct_stage_runs", "stage_name = 'extract'")
    assert (extract["duration_seconds"], extract["retries"]) == (360, 1)
    assert extract["records_per_second"] == 300 / 360
    publish = one(db, "fct_stage_runs", "stage_name = 'publish'")
    assert publish["duration_seconds"] is None  # completed without a running event


def test_a_failed_run_names_its_first_failed_stage(ledger, db, run_dbt):
    start = ago(hours=5)
    ledger.emit_many(
        [
            event("etl@1", "running", start),
            event("etl@1", "failed", start + timedelta(minutes=4), stage="b", error_message="x"),
            event("etl@1", "failed", start + timedelta(minutes=2), stage="c", error_message="y"),
            event("etl@1", "failed", start + timedelta(minutes=5)),
        ]
    )
    run_dbt(*BUILD)
    run = one(db, "fct_pipeline_runs", "true")
    assert (run["failed_stage_name"], run["failed_stage_count"]) == ("c", 2)
    assert run["owner"] == "unassigned"  # not in the catalog: var default_owner


@pytest.mark.parametrize(
    "case",
    [
        ("daily_sales", 119, False),  # the catalog's stale_after_minutes: 120
        ("daily_sales", 121, True),
        ("not_cataloged", 59, False),  # var default_stale_after_minutes: 60
        ("not_cataloged", 61, True),
    ],
    ids=str,
)
def test_an_open_run_is_stale_after_its_pipelines_threshold(ledger, db, run_dbt, case):
    pipeline, silent_minutes, stale = case
    key = f"{pipeline}@open"
    last = ago(minutes=silent_minutes)
    ledger.emit_many(
        [
            event(key, "running", last - timedelta(hours=3)),
            event(key, "running", last, stage="load", records_processed=5),
        ]
    )
    run_dbt(*BUILD)
    assert one(db, "fct_pipeline_runs", "true")["is_stale"] is stale
    assert one(db, "pipeline_health", f"pipeline_name = '{pipeline}'")["stale_runs"] == stale


def test_a_run_goes_stale_without_new_events_on_the_next_build(ledger, db, run_dbt):
    ledger.emit(event("daily_sales@open", "running", ago(minutes=100)))
    run_dbt(*BUILD)
    assert one(db, "fct_pipeline_runs", "true")["is_stale"] is False
    later = json.dumps({"as_of": (AS_OF + timedelta(minutes=30)).isoformat()})
    run_dbt("run", "--vars", later)
    assert one(db, "fct_pipeline_runs", "true")["is_stale"] is True


# pipeline_daily, stage_daily, failure_reasons -------------------------------------------


def test_daily_counts_rates_and_percentiles(ledger, db, run_dbt):
    day = datetime(2026, 3, 1, 8, tzinfo=UTC)
    minutes = [4, 7, 9, 30, 12]
    events = [
        e
        for number, length in enumerate(minutes)
        for e in finished_run(
            f"etl@{number}", day + timedelta(hours=number), minutes=length, records=100 + number
        )
    ]
    events += finished_run("etl@f", day, minutes=2, status="failed", failing_stage="load")
    events += [event("etl@open", "running", day + timedelta(hours=9))]
    events += finished_run("etl@next-day", day + timedelta(days=1), minutes=3)
    ledger.emit_many(events)
    run_dbt(*BUILD)

    row = one(db, "pipeline_daily", f"run_date = '{day.date()}'")
    durations = [60.0 * m for m in minutes]  # from the stage's running event to the end
    assert row == {
        "pipeline_name": "etl",
        "run_date": day.date(),
        "runs_started": 7,
        "runs_completed": 5,
        "runs_failed": 1,
        "runs_open": 1,
        "success_rate": 5 / 6,
        "records_processed": sum(100 + n for n in range(5)),
        "duration_p50_seconds": percentile_cont(durations, 0.5),
        "duration_p95_seconds": pytest.approx(percentile_cont(durations, 0.95)),
        "duration_max_seconds": max(durations),
    }
    load = one(db, "stage_daily", f"run_date = '{day.date()}'")
    assert (load["stage_runs"], load["stages_completed"], load["stages_failed"]) == (6, 5, 1)
    assert load["duration_p50_seconds"] == percentile_cont(durations, 0.5)
    runs_by_day = {r["run_date"]: r["runs_started"] for r in mart(db, "pipeline_daily")}
    assert runs_by_day == {day.date(): 7, day.date() + timedelta(days=1): 1}


def test_failures_that_differ_only_in_values_share_a_reason(ledger, db, run_dbt):
    day = datetime(2026, 3, 2, 8, tzinfo=UTC)
    messages = [
        "OperationalError: connection to 10.0.3.17:5432 timed out after 30s",
        "OperationalError: connection to 10.0.3.18:5432 timed out after 45s",
        "KeyError: 'customer_id' in /srv/jobs/etl.py line 17\nTraceback (most recent call last)",
        "KeyError: 'order_id' in /srv/jobs/load.py line 90",
    ]
    events = [
        e
        for number, message in enumerate(messages)
        for e in finished_run(
            f"etl@{number}",
            day + timedelta(hours=number),
            status="failed",
            failing_stage="load",
            error=message,
        )
    ]
    # A run that fails by itself, without a failed stage or a message.
    events += [event("etl@alone", "running", day), event("etl@alone", "failed", day)]
    ledger.emit_many(events)
    run_dbt(*BUILD)

    reasons = {(r["stage_name"], r["error_signature"]): r for r in mart(db, "failure_reasons")}
    assert set(reasons) == {
        ("load", "OperationalError: connection to <n>:<n> timed out after <n>s"),
        ("load", "KeyError: <value> in <path> line <n>"),
        (None, "<no message>"),
    }
    timeouts = reasons["load", "OperationalError: connection to <n>:<n> timed out after <n>s"]
    assert (timeouts["failures"], timeouts["runs_affected"]) == (2, 2)
    assert timeouts["sample_error_message"] == messages[1]  # the latest
    assert timeouts["first_seen_at"] < timeouts["last_seen_at"]


# run_anomalies -----------------------------------------------------------------------------


def steady_runs(records: Iterable[int], start: datetime) -> list[dict[str, Any]]:
    return [
        e
        for number, count in enumerate(records)
        for e in finished_run(f"etl@{number:02}", start + timedelta(hours=number), records=count)
    ]


def test_a_run_far_from_its_trailing_baseline_is_an_anomaly(ledger, db, run_dbt):
    ledger.emit_many(steady_runs([100, 104, 98, 101, 97, 102, 500, 99], ago(days=2)))
    run_dbt(*BUILD)
    [anomaly] = mart(db, "run_anomalies")
    baseline = [100, 104, 98, 101, 97, 102]
    mean = sum(baseline) / len(baseline)
    stddev = math.sqrt(sum((x - mean) ** 2 for x in baseline) / (len(baseline) - 1))
    assert anomaly | {"pipeline_id": None, "created_at": None} == {
        "pipeline_id": None,
        "run_key": "etl@06",
        "pipeline_name": "etl",
        "created_at": None,
        "metric": "records_processed",
        "measured_value": 500,
        "baseline_mean": pytest.approx(mean),
        "baseline_stddev": pytest.approx(stddev),
        "baseline_runs": 6,
        "z_score": pytest.approx((500 - mean) / stddev),
        "direction": "high",
    }


def test_no_anomaly_before_the_baseline_has_its_minimum_size(ledger, db, run_dbt):
    ledger.emit_many(steady_runs([100, 104, 98, 101, 5000], ago(days=2)))  # 4 runs before it
    run_dbt(*BUILD)
    assert mart(db, "run_anomalies") == []


def test_a_late_run_rescores_the_runs_after_it_as_a_full_refresh_would(ledger, db, run_dbt):
    start = ago(days=2)
    ledger.emit_many(steady_runs([100, 104, 98, 101, 97, 102, 500, 99], start))
    ledger.emit(event("etl@open", "running", start + timedelta(hours=9)))
    run_dbt(*BUILD)
    assert [row["run_key"] for row in mart(db, "run_anomalies")] == ["etl@06"]

    # Created before etl@06, it joins its baseline (which no longer flags 500) and is
    # itself far from the runs before it; an earlier failure takes etl@03 out of both.
    late = finished_run("etl@05b", start + timedelta(hours=5, minutes=30), records=480)
    failure = event("etl@03", "failed", start + timedelta(hours=3, minutes=5))
    ledger.emit_many([*late, failure])
    run_dbt(*BUILD)
    incremental = mart(db, "run_anomalies")
    assert [(row["run_key"], row["metric"]) for row in incremental] == [
        ("etl@05b", "records_processed")
    ]
    assert incremental[0]["baseline_runs"] == 5  # etl@00 to etl@05 without etl@03

    run_dbt(*BUILD, "--full-refresh")
    assert mart(db, "run_anomalies") == incremental


# pipeline_health ---------------------------------------------------------------------------


def test_health_labels_follow_the_documented_rule(ledger, db, run_dbt):
    def history(pipeline: str, statuses: str) -> list[dict[str, Any]]:
        return [
            e
            for number, status in enumerate(statuses)
            for e in finished_run(
                f"{pipeline}@{number}",
                ago(days=6) + timedelta(hours=number),
                status={"c": "completed", "f": "failed"}[status],
                failing_stage="load" if status == "f" else None,
            )
        ]

    ledger.emit_many(
        history("steady", "cccccccccc")
        + history("flaky", "ccccccccfc")  # success 9/10 in 7 days, last run fine
        + history("wobbly", "cccccccccf")  # the last one failed
        + history("broken", "ccccccfff")  # three failures in a row
        + history("stuck", "ccc")
        + [event("stuck@open", "running", ago(hours=3))]  # default threshold: 60 minutes
    )
    run_dbt(*BUILD)
    health = {row["pipeline_name"]: row for row in mart(db, "pipeline_health")}
    assert {name: row["health"] for name, row in health.items()} == {
        "steady": "healthy",
        "flaky": "healthy",
        "wobbly": "degraded",
        "broken": "failing",
        "stuck": "stale",
        # In seeds/pipeline_catalog.csv, never run:
        "daily_sales": "unknown",
        "customer_sync": "unknown",
        "inventory_snapshot": "unknown",
        "marketing_attribution": "unknown",
        "finance_close": "unknown",
    }
    assert health["broken"]["consecutive_failures"] == 3
    assert health["broken"]["success_rate_7d"] == 6 / 9
    assert health["flaky"]["consecutive_failures"] == 0
    assert health["flaky"]["success_rate_7d"] == 0.9
    assert health["stuck"]["running_runs"] == 1
    assert health["steady"]["as_of"] == AS_OF


# Incremental builds equal a full refresh ----------------------------------------------------

# Times around two midnights, so that a late event can move a run to an earlier day.
_times = st.sampled_from([-26, -25, -2, -1, 1, 2, 22, 23, 25]).map(
    lambda hours: datetime(2026, 3, 5, tzinfo=UTC) + timedelta(hours=hours)
)
_events = st.builds(
    lambda run, stage, status, at, records, error, attempt, run_attempt: event(
        f"p{run % 2}@{run}",
        status,
        at,
        stage=stage,
        records_processed=records,
        error_message=error if status == "failed" else None,
        attempt=attempt,
        run_attempt=run_attempt,
        event_id=str(uuid.uuid4()),
    ),
    run=st.integers(0, 3),
    stage=st.sampled_from([None, "load", "publish"]),
    status=st.sampled_from(["pending", "running", "completed", "failed"]),
    at=_times,
    records=st.none() | st.integers(0, 100),
    error=st.sampled_from(["timeout after 30s", "timeout after 45s", "disk full"]),
    attempt=st.integers(1, 2),
    run_attempt=st.integers(1, 2),
)


@settings(
    max_examples=6,
    deadline=None,
    # Each example costs several dbt runs: report the failing example unshrunk.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(events=st.lists(_events, min_size=1, max_size=40), data=st.data())
def test_incremental_marts_equal_a_full_refresh(ledger, db, run_dbt, events, data):
    clear_built(db)
    order = data.draw(st.permutations(events))
    cuts = sorted(data.draw(st.sets(st.integers(1, len(order)), max_size=3)))
    for start, end in zip([0, *cuts], [*cuts, len(order)], strict=True):
        if start < end:
            ledger.emit_many(order[start:end])
            run_dbt(*BUILD)
    incremental = {name: mart(db, name) for name in MARTS}

    run_dbt(*BUILD, "--full-refresh")
    assert {name: mart(db, name) for name in MARTS} == incremental


# Documentation and contracts ---------------------------------------------------------------


def test_every_mart_column_is_documented_typed_and_in_the_docs_catalog(
    ledger, db, run_dbt, dbt_dir
):
    ledger.emit_many(finished_run("etl@1", ago(days=1)))
    run_dbt(*BUILD)
    run_dbt("docs", "generate")
    target = dbt_dir / "target"
    manifest = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
    catalog = json.loads((target / "catalog.json").read_text(encoding="utf-8"))
    marts = {
        node_id: node
        for node_id, node in manifest["nodes"].items()
        if node["resource_type"] == "model" and node["schema"] == "marts"
    }
    assert sorted(node["name"] for node in marts.values()) == sorted(MARTS)
    for node_id, node in marts.items():
        assert node["config"]["contract"]["enforced"], node_id
        built = set(catalog["nodes"][node_id]["columns"])
        documented = {name for name, column in node["columns"].items() if column["description"]}
        assert built == documented == set(node["columns"]), node_id
        assert all(column["data_type"] for column in node["columns"].values()), node_id
