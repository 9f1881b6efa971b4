"""ledger_retry: extract -> transform (fails on try 1, succeeds on try 2) -> load,
plus a mapped task `partition` expanded over three values (one instance returns a value)."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, get_current_context, task


@task
def extract():
    return None


@task(retries=1, retry_delay=timedelta(seconds=1))
def transform():
    ti = get_current_context()["ti"]
    if ti.try_number == 1:
        raise RuntimeError("transient: warehouse connection reset (try 1)")


@task
def load():
    return None


@task
def partition(part: str):
    # Only one of the three mapped instances outputs something (an XCom).
    if part == "b":
        print("partition b wrote 42 rows")
        return {"part": part, "rows": 42}
    return None


with DAG(
    dag_id="ledger_retry",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["ledger"],
):
    e = extract()
    e >> transform() >> load()
    e >> partition.expand(part=["a", "b", "c"])
