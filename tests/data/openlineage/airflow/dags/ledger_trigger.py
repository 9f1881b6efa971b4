"""ledger_parent_trigger triggers ledger_child with TriggerDagRunOperator."""

from __future__ import annotations

from datetime import datetime

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG, task

with DAG(
    dag_id="ledger_child",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["ledger"],
):

    @task
    def child_work(**context):
        print("child conf:", context["dag_run"].conf)

    child_work()


with DAG(
    dag_id="ledger_parent_trigger",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["ledger"],
):

    @task
    def prepare():
        return None

    trigger = TriggerDagRunOperator(
        task_id="trigger_child",
        trigger_dag_id="ledger_child",
        conf={"source": "ledger_parent_trigger"},
        wait_for_completion=True,
        poke_interval=2,
    )

    prepare() >> trigger
