"""`make demo`'s history and report: every status recorded, the marts' views printed."""

from __future__ import annotations

from loader import Ledger
from loader.report import print_report
from loader.simulate import simulate
from tests.support import query


def test_the_demo_history_builds_and_reports_health_slow_stages_failures_and_stale_runs(
    database, db, run_dbt, capsys
):
    with Ledger(database) as ledger:
        runs = simulate(ledger)
    run_dbt("build")  # the models and every dbt test, on the demo's history

    statuses = query(db, "select status, count(*) as n from public.pipelines group by status")
    assert {row["status"] for row in statuses} == {"pending", "running", "completed", "failed"}
    assert sum(row["n"] for row in statuses) == runs
    stale = query(db, "select run_key from marts.fct_pipeline_runs where is_stale")
    assert [row["run_key"].rsplit(":", 1)[-1] for row in stale] == ["stuck"]

    print_report(db)
    report = capsys.readouterr().out
    health = report.split("Pipeline health")[1].split("Slowest stages")[0]
    for pipeline in ("daily_sales", "customer_sync", "inventory_snapshot", "finance_close"):
        assert pipeline in health
    assert "stale" in health
    assert "unknown" in health
    failures = report.split("Top failure reasons")[1].split("Stale runs now")[0]
    assert "<n>" in failures  # signatures, values masked
    assert ":stuck" in report.split("Stale runs now")[1]
