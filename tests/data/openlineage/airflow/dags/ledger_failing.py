"""ledger_failing: extract -> transform (raises, no retries) -> load (upstream_failed)."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, task


@task
def extract():
    return None


@task(retries=0)
def transform():
    raise ValueError("column 'amount' missing")


@task
def load():
    return None


with DAG(
    dag_id="ledger_failing",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["ledger"],
):
    extract() >> transform() >> load()
