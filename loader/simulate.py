"""A realistic demo history, recorded through the public API.

Several pipelines on schedules, the original demo's five stages, retries, failures with
and without a run-level message, a late heartbeat, and, at the end, a stuck run, a
running one and a queued one. Event ids derive from the run key, so recording the same
window twice stores nothing new.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from loader.api import Ledger, Run
from loader.contract import derived_event_id

FIVE_STAGES = (
    "Data Generation",
    "Data Ingestion",
    "Spark Processing",
    "DBT Transformation",
    "Data Export",
)


@dataclass(frozen=True)
class PipelineSpec:
    """How one simulated pipeline behaves."""

    name: str
    every: timedelta
    stages: tuple[str, ...]
    rows: int
    failure_rate: float
    max_attempts: int


PIPELINES = (
    PipelineSpec("daily_sales", timedelta(days=1), FIVE_STAGES, 250_000, 0.04, 2),
    PipelineSpec(
        "customer_sync",
        timedelta(hours=6),
        ("Data Ingestion", "DBT Transformation", "Data Export"),
        40_000,
        0.03,
        3,
    ),
    PipelineSpec("inventory_snapshot", timedelta(days=1), FIVE_STAGES, 1_200_000, 0.12, 2),
    PipelineSpec(
        "marketing_attribution",
        timedelta(hours=12),
        ("Data Ingestion", "Spark Processing", "DBT Transformation"),
        90_000,
        0.08,
        1,
    ),
)

ERRORS = {
    "Data Generation": "ValueError: generator config 'orders.yml' has no column 'amount'",
    "Data Ingestion": "psycopg.OperationalError: connection to 10.0.3.17:5432 timed out",
    "Spark Processing": (
        "ExecutorLostFailure (executor 7 exited): Container killed by YARN for exceeding "
        "memory limits. 9.1 GB of 9 GB physical memory used"
    ),
    "DBT Transformation": (
        "Database Error in model fct_orders (models/marts/fct_orders.sql): "
        'relation "stg_orders" does not exist'
    ),
    "Data Export": "botocore.exceptions.ClientError: SlowDown (503) on s3://exports/part-00042",
}


class _RunRecorder:
    """Records one simulated run with deterministic event ids and explicit times."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.sequence = 0

    def record(self, status: str, at: datetime, **fields: object) -> None:
        self.sequence += 1
        event_id = derived_event_id("simulate", str(self.run.run_key), str(self.sequence))
        self.run.record(status, at=at, event_id=str(event_id), **fields)  # type: ignore[arg-type]


def simulate(ledger: Ledger, *, days: int = 14, seed: int = 7) -> int:
    """Record `days` of history for every pipeline plus three live runs; return the run count."""
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    runs = 0
    for spec in PIPELINES:
        scheduled = now - timedelta(days=days)
        while scheduled < now - timedelta(hours=6):
            _finished_run(ledger, spec, scheduled, rng)
            runs += 1
            scheduled += spec.every
    # Live runs are timed from the real clock, so that the fresh ones are not stale yet
    # when the marts are built; their keys keep the hour, as the history's do.
    _live_runs(ledger, now, datetime.now(UTC), rng)
    return runs + 3


def _finished_run(
    ledger: Ledger, spec: PipelineSpec, scheduled: datetime, rng: random.Random
) -> None:
    run = ledger.start_run(
        spec.name,
        run_key=f"{spec.name}@{scheduled:%Y-%m-%dT%H:%M}Z",
        stages=spec.stages,
        status="pending",
        at=scheduled,
    )
    recorder = _RunRecorder(run)
    clock = scheduled + timedelta(seconds=rng.randint(5, 180))
    recorder.record("running", clock)
    rows = int(spec.rows * rng.uniform(0.8, 1.2))
    for stage in spec.stages:
        clock, rows, failure = _stage(recorder, spec, stage, clock, rows, rng=rng)
        if failure is not None:
            # Half the jobs report their own message, half leave the stage's error to show.
            own_message = f"pipeline aborted after {stage}" if rng.random() < 0.5 else None
            recorder.record("failed", clock + timedelta(seconds=2), error=own_message)
            return
    recorder.record("completed", clock + timedelta(seconds=2))
    if rng.random() < 0.05:
        # A heartbeat that was delayed in the job's network arrives after completion.
        last = spec.stages[-1]
        recorder.record(
            "running", clock + timedelta(seconds=30), stage_name=last, records=rows // 2
        )


def _stage(
    recorder: _RunRecorder,
    spec: PipelineSpec,
    stage: str,
    clock: datetime,
    rows: int,
    *,
    rng: random.Random,
) -> tuple[datetime, int, str | None]:
    rows = int(rows * rng.uniform(0.9, 1.0))
    seconds = rng.lognormvariate(4.5, 0.5) * (3 if stage == "Spark Processing" else 1)
    for attempt in range(1, spec.max_attempts + 1):
        recorder.record("running", clock, stage_name=stage, attempt=attempt)
        clock += timedelta(seconds=seconds / 2)
        recorder.record("running", clock, stage_name=stage, attempt=attempt, records=rows // 2)
        clock += timedelta(seconds=seconds / 2)
        if rng.random() >= spec.failure_rate:
            recorder.record("completed", clock, stage_name=stage, attempt=attempt, records=rows)
            return clock, rows, None
        error = ERRORS[stage]
        recorder.record("failed", clock, stage_name=stage, attempt=attempt, error=error)
        clock += timedelta(seconds=30 * attempt)
    return clock, rows, error


def _live_runs(ledger: Ledger, hour: datetime, now: datetime, rng: random.Random) -> None:
    stuck = _RunRecorder(
        ledger.start_run(
            "daily_sales",
            run_key=f"daily_sales@{hour:%Y-%m-%dT%H}:stuck",
            stages=FIVE_STAGES,
            at=now - timedelta(hours=7),
        )
    )
    stuck.record("running", now - timedelta(hours=7), stage_name="Data Generation")
    stuck.record(
        "running", now - timedelta(hours=6, minutes=50), stage_name="Data Generation", records=1200
    )

    running = _RunRecorder(
        ledger.start_run(
            "customer_sync",
            run_key=f"customer_sync@{hour:%Y-%m-%dT%H}:live",
            stages=("Data Ingestion", "DBT Transformation", "Data Export"),
            at=now - timedelta(minutes=4),
        )
    )
    running.record("running", now - timedelta(minutes=4), stage_name="Data Ingestion")
    running.record(
        "completed",
        now - timedelta(minutes=1),
        stage_name="Data Ingestion",
        records=rng.randint(30_000, 50_000),
    )
    running.record("running", now - timedelta(seconds=50), stage_name="DBT Transformation")

    ledger.start_run(
        "marketing_attribution",
        run_key=f"marketing_attribution@{hour:%Y-%m-%dT%H}:queued",
        stages=("Data Ingestion", "Spark Processing", "DBT Transformation"),
        status="pending",
        at=now - timedelta(seconds=20),
    )
