"""bench/generate_history.sql: the set-based history `make bench` builds is contract-valid."""

from __future__ import annotations

from psycopg import ClientCursor

from loader.events import parse_event
from tests.support import PROJECT_DIR, query

GENERATOR = PROJECT_DIR / "bench" / "generate_history.sql"
RUNS = 50  # every 25th fails: runs 25 and 50
INTERVAL_SECONDS = 3600


def test_the_generated_history_follows_the_contract_and_the_registries(db, run_dbt):
    ClientCursor(db).execute(
        GENERATOR.read_text(encoding="utf-8"),
        {"runs": RUNS, "run_interval_seconds": INTERVAL_SECONDS},
    )
    events = query(
        db,
        "select events.*, runs.run_key, stages.stage_name, stages.pipeline_id as stage_run"
        " from raw.run_events as events"
        " inner join raw.runs using (pipeline_id)"
        " left join raw.stages using (stage_id)",
    )
    assert len(events) == 14 * RUNS - 3 * 2  # failing runs never reach "publish"
    for row in events:
        assert row["stage_id"] is None or row["stage_run"] == row["pipeline_id"]
        parse_event(
            {
                "event_id": str(row["event_id"]),
                "run_key": row["run_key"],
                "stage_name": row["stage_name"],
                "status": row["status"],
                "event_time": row["event_time"].isoformat(),
                "records_processed": row["records_processed"],
                "error_message": row["error_message"],
                "attempt": row["attempt"],
            }
        )

    starts = query(
        db,
        "select min(event_time) as first, max(event_time) as last from raw.run_events"
        " where stage_id is null and status = 'running'",
    )
    assert (starts[0]["last"] - starts[0]["first"]).total_seconds() == INTERVAL_SECONDS * (RUNS - 1)

    run_dbt("build")  # every dbt test holds on it
    statuses = query(db, "select status, count(*) as n from public.pipelines group by status")
    assert {row["status"]: row["n"] for row in statuses} == {"completed": RUNS - 2, "failed": 2}
