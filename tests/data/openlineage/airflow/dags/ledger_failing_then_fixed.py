"""ledger_failing_then_fixed: transform fails while the marker file is missing.

The marker path is LEDGER_FIXED_MARKER (default /work/scratch/airflow-marker/fixed).
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import DAG, task

MARKER = os.environ.get("LEDGER_FIXED_MARKER", "/work/scratch/airflow-marker/fixed")


@task
def extract():
    return None


@task(retries=0)
def transform():
    if not os.path.exists(MARKER):
        raise FileNotFoundError(f"marker {MARKER} missing: upstream not fixed yet")


@task
def load():
    return None


with DAG(
    dag_id="ledger_failing_then_fixed",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["ledger"],
):
    extract() >> transform() >> load()
