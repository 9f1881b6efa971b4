#!/usr/bin/env bash
# Regenerates the Airflow event files beside this script by running the real
# producer (apache-airflow-providers-openlineage's listener) on the DAGs in dags/.
#
# Versions used for the committed files (pip freeze):
#   apache-airflow==3.3.2  apache-airflow-core==3.3.2  apache-airflow-task-sdk==1.3.2
#   apache-airflow-providers-openlineage==2.20.3  apache-airflow-providers-standard==1.21.0
#   apache-airflow-providers-common-compat==1.23.0  apache-airflow-providers-common-sql==2.4.0
#   openlineage-python==1.54.0  openlineage-integration-common==1.54.0  openlineage-sql==1.54.0
#   Python 3.11, SQLite metadata database, LocalExecutor.
#
# The venv (no constraints file was reachable; pip resolved it unaided):
#   python3.11 -m venv /work/scratch/airflow-venv
#   /work/scratch/airflow-venv/bin/pip install 'apache-airflow==3.3.2' \
#       'apache-airflow-providers-openlineage==2.20.3'
#
# Two ways of running a DAG are used:
#  * `airflow dags test` (files in dags_test/): no scheduler; the listener in the
#    same process sends task events and the DAG run's COMPLETE/FAIL, but never the
#    DAG run's START (dags test creates the run directly in state `running`, so
#    DagRun.notify_dagrun_state_changed(RUNNING), which fires the listener's
#    on_dag_run_running, is never called).  dags test also deletes and re-creates
#    the DAG run of the same logical date, so it cannot re-run a cleared run, and
#    TriggerDagRunOperator(wait_for_completion=True) would wait forever on a child
#    run that nothing schedules.
#  * the real scheduler (files at the top level): `airflow api-server`,
#    `airflow dag-processor` and `airflow scheduler` (LocalExecutor) are started
#    here; the scheduler is restarted for each scenario so that each scenario's
#    events go to their own file (the transport is read from the environment of the
#    scheduler, which sends the DAG-run events, and of its task workers, which send
#    the task events).  DAG runs are started with `airflow dags trigger`.
#
# Usage: bash make_events.sh   (writes *.jsonl next to this script; takes ~3 minutes)
set -euo pipefail

OUT_DIR=$(cd "$(dirname "$0")" && pwd)
SCRATCH=${SCRATCH:-/work/scratch}
export PATH="$SCRATCH/airflow-venv/bin:$PATH"
export AIRFLOW_HOME=$SCRATCH/airflow-home
export AIRFLOW__CORE__DAGS_FOLDER=$OUT_DIR/dags
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__EXECUTOR=LocalExecutor
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=False
export AIRFLOW__API__HOST=127.0.0.1 AIRFLOW__API__PORT=28080
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL=http://127.0.0.1:28080/execution/
export AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC=1
export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=5
# One JWT secret shared by api-server, scheduler and workers (random, never stored).
AIRFLOW__API_AUTH__JWT_SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(24))')
export AIRFLOW__API_AUTH__JWT_SECRET
export PYTHONDONTWRITEBYTECODE=1   # no __pycache__ in dags/
# OpenLineage provider: namespace of every Airflow job; the transport is set per scenario.
export AIRFLOW__OPENLINEAGE__NAMESPACE=airflow-prod
export LEDGER_FIXED_MARKER=$SCRATCH/airflow-marker/fixed
LOGS=$SCRATCH/af-logs
mkdir -p "$LOGS" "$OUT_DIR/dags_test" "$(dirname "$LEDGER_FIXED_MARKER")"
rm -f "$LEDGER_FIXED_MARKER"

transport_to() {  # point the provider's file transport at FILE (emptied first)
    : > "$1"
    export AIRFLOW__OPENLINEAGE__TRANSPORT="{\"type\": \"file\", \"log_file_path\": \"$1\", \"append\": true}"
}

pids=()
start_bg() {  # start_bg NAME COMMAND...: run in its own process group
    local name=$1; shift
    setsid "$@" > "$LOGS/$name.log" 2>&1 &
    echo $! > "$LOGS/$name.pid"
    pids+=("$!")
}
stop_bg() {  # stop_bg NAME: TERM, then KILL the process group (the LocalExecutor
             # scheduler waits for its idle workers on TERM and does not exit by itself)
    local pid; pid=$(cat "$LOGS/$1.pid")
    kill -TERM -- "-$pid" 2>/dev/null || true
    for _ in $(seq 1 10); do kill -0 "$pid" 2>/dev/null || return 0; sleep 1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
}
cleanup() { for p in "${pids[@]}"; do kill -KILL -- "-$p" 2>/dev/null || true; done; }
trap cleanup EXIT

wait_run() {  # wait_run DAG_ID RUN_ID: until the DAG run is success or failed
    local s
    for _ in $(seq 1 100); do
        s=$(airflow dags state "$1" "$2" 2>/dev/null | tail -n 1)
        case "$s" in success|failed) echo "$1 $2: $s"; return 0;; esac
        sleep 3
    done
    echo "timeout waiting for $1 $2"; return 1
}
wait_dag_event() {  # wait_dag_event FILE DAG_ID N: until FILE holds N terminal events of the DAG run
    for _ in $(seq 1 60); do
        python3 - "$@" <<'EOF' && return 0
import json, sys
path, dag_id, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
events = [json.loads(line) for line in open(path) if line.strip()]
done = [e for e in events if e["job"]["name"] == dag_id and e.get("eventType") in ("COMPLETE", "FAIL")]
sys.exit(0 if len(done) >= n else 1)
EOF
        sleep 1
    done
    echo "timeout waiting for the DAG-run event of $2 in $1"; return 1
}

# Fresh metadata database.
airflow db reset --yes > "$LOGS/db-reset.log" 2>&1
airflow db migrate > "$LOGS/db-migrate.log" 2>&1

# ---- 1. airflow dags test (no scheduler) -----------------------------------
transport_to "$OUT_DIR/dags_test/retry_and_mapped.jsonl"
airflow dags test ledger_retry 2026-01-01 > "$LOGS/dags-test-retry.log" 2>&1 || echo "(exit code $?)"
transport_to "$OUT_DIR/dags_test/failing.jsonl"
airflow dags test ledger_failing 2026-01-01 > "$LOGS/dags-test-failing.log" 2>&1 || echo "(exit code $?)"
unset AIRFLOW__OPENLINEAGE__TRANSPORT

# ---- 2. the scheduler ------------------------------------------------------
start_bg api-server airflow api-server --host 127.0.0.1 --port 28080
start_bg dag-processor airflow dag-processor
for _ in $(seq 1 60); do
    n=$(airflow dags list -o plain 2>/dev/null | grep -c '^ledger_' || true)
    [ "$n" -ge 5 ] && break
    sleep 2
done
for d in ledger_retry ledger_failing ledger_failing_then_fixed ledger_parent_trigger ledger_child; do
    airflow dags unpause "$d" > /dev/null 2>&1
done

# 2a. retries and a mapped task
F=$OUT_DIR/retry_and_mapped.jsonl; transport_to "$F"
start_bg scheduler airflow scheduler
airflow dags trigger ledger_retry -l 2026-01-02T00:00:00+00:00 -r ledger_retry_run > /dev/null 2>&1
wait_run ledger_retry ledger_retry_run; wait_dag_event "$F" ledger_retry 1
stop_bg scheduler

# 2b. a failing task, no retries
F=$OUT_DIR/failing.jsonl; transport_to "$F"
start_bg scheduler airflow scheduler
airflow dags trigger ledger_failing -l 2026-01-02T00:00:00+00:00 -r ledger_failing_run > /dev/null 2>&1
wait_run ledger_failing ledger_failing_run; wait_dag_event "$F" ledger_failing 1
stop_bg scheduler

# 2c. the same DAG run failed, cleared (transform and downstream) and re-run
F=$OUT_DIR/cleared_and_rerun.jsonl; transport_to "$F"
start_bg scheduler airflow scheduler
airflow dags trigger ledger_failing_then_fixed -l 2026-01-02T00:00:00+00:00 -r ledger_fixed_run > /dev/null 2>&1
wait_run ledger_failing_then_fixed ledger_fixed_run; wait_dag_event "$F" ledger_failing_then_fixed 1
touch "$LEDGER_FIXED_MARKER"
airflow tasks clear ledger_failing_then_fixed -t transform --downstream \
    -s 2026-01-02 -e 2026-01-02 --yes > "$LOGS/tasks-clear.log" 2>&1
# (In 3.3.2, an anchored -t '^transform$' or 'transform$' matched no task instance and
# cleared nothing, silently; -t transform works.)  The clear sets the DAG run back to queued:
[ "$(airflow dags state ledger_failing_then_fixed ledger_fixed_run 2>/dev/null | tail -n 1)" != failed ] \
    || { echo "tasks clear cleared nothing"; exit 1; }
wait_run ledger_failing_then_fixed ledger_fixed_run; wait_dag_event "$F" ledger_failing_then_fixed 2
stop_bg scheduler

# 2d. TriggerDagRunOperator(wait_for_completion=True) starting ledger_child
F=$OUT_DIR/trigger.jsonl; transport_to "$F"
start_bg scheduler airflow scheduler
airflow dags trigger ledger_parent_trigger -l 2026-01-02T00:00:00+00:00 -r ledger_parent_run > /dev/null 2>&1
wait_run ledger_parent_trigger ledger_parent_run; wait_dag_event "$F" ledger_parent_trigger 1
wait_dag_event "$F" ledger_child 1
stop_bg scheduler

stop_bg dag-processor
stop_bg api-server
rm -f "$LEDGER_FIXED_MARKER"
echo done
