#!/usr/bin/env bash
# Regenerates the dbt-ol event files beside this script by running the real
# producer (openlineage-dbt's `dbt-ol` wrapper) on this repository's dbt project.
#
# Versions used for the committed files (pip freeze):
#   dbt-core==1.11.16  dbt-postgres==1.11.0  dbt-adapters==1.24.5
#   openlineage-dbt==1.54.0  openlineage-python==1.54.0
#   openlineage-integration-common==1.54.0  openlineage-sql==1.54.0
#   PostgreSQL 15.18 (Debian 15.18-0+deb12u1), Python 3.11
#
# What this script assumes already exists (how it was made):
#   mkdir -p /work/scratch && cd /work/scratch
#   git clone -q /work/main /work/scratch/ledger-dbt        # a copy; the failing scenario edits it
#   python3.11 -m venv dbtol-venv
#   dbtol-venv/bin/pip install 'dbt-core~=1.11.0' 'dbt-postgres~=1.11.0' \
#       'openlineage-dbt==1.54.0' -e /work/scratch/ledger-dbt
#   # PostgreSQL 15, trust auth, TCP 127.0.0.1:55432 + unix socket dir (run as a non-root user):
#   useradd --system --no-create-home embedded_postgres   # if missing
#   mkdir -p pg15 pg15sock && chown embedded_postgres pg15 pg15sock
#   runuser -u embedded_postgres -- /usr/lib/postgresql/15/bin/initdb -D /work/scratch/pg15/data -U postgres --auth=trust
#   runuser -u embedded_postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D /work/scratch/pg15/data \
#       -l /work/scratch/pg15/log -w -o "-h 127.0.0.1 -p 55432 -k /work/scratch/pg15sock" start
#   createdb -h 127.0.0.1 -p 55432 -U postgres ledger
#   # demo data (run once, from the copy, with the DATABASE_* variables below):
#   dbtol-venv/bin/python -m loader init
#   dbtol-venv/bin/python -m loader simulate --days 3
#   dbtol-venv/bin/dbt seed --profiles-dir . --project-dir .
#
# Usage: bash make_events.sh   (writes *.jsonl next to this script)
set -euo pipefail

OUT_DIR=$(cd "$(dirname "$0")" && pwd)
PROJECT=${PROJECT:-/work/scratch/ledger-dbt}
VENV=${VENV:-/work/scratch/dbtol-venv}
export PATH="$VENV/bin:$PATH"

# profiles.yml of the project reads these.
export DATABASE_HOST=127.0.0.1 DATABASE_PORT=55432 DATABASE_NAME=ledger \
    DATABASE_USERNAME=postgres DATABASE_PASSWORD=

# openlineage-python 1.54: OPENLINEAGE__<KEY>__<KEY>=value builds the client config
# (values are parsed as JSON when possible, so "true" is a boolean).
export OPENLINEAGE__TRANSPORT__TYPE=file
export OPENLINEAGE__TRANSPORT__APPEND=true
# dbt-ol: the namespace of the dbt jobs (default "dbt").
export OPENLINEAGE_NAMESPACE=ledger-dbt
unset OPENLINEAGE_PARENT_ID OPENLINEAGE_ROOT_PARENT_ID OPENLINEAGE_CONTEXT OPENLINEAGE_URL || true

cd "$PROJECT"
git checkout -q -- models/marts/ledger/pipeline_stages.sql   # undo any earlier injected failure

# run_scenario FILE COMMAND...: empty FILE, point the transport at it, run COMMAND.
run_scenario() {
    local file=$OUT_DIR/$1; shift
    : > "$file"
    echo "== $file: $*"
    OPENLINEAGE__TRANSPORT__LOG_FILE_PATH=$file "$@" || echo "(exit code $?)"
}

# 1. A successful build.
run_scenario build.jsonl dbt-ol build --profiles-dir . --project-dir .

# 2. A build where one model fails: a pre-hook of pipeline_stages selects a column
#    that does not exist.  (A pre-hook rather than the model's own SQL, so that the
#    model's unit tests, which run first in `dbt build` and do not run hooks, pass and
#    the model itself fails; its downstream nodes are then skipped.)
sed -i "s/^{{ config($/{{ config(\n    pre_hook=\"select no_such_column from {{ ref('stg_raw__stages') }}\",/" \
    models/marts/ledger/pipeline_stages.sql
run_scenario build_failing.jsonl dbt-ol build --profiles-dir . --project-dir .
# 2b. The same failure seen through --consume-structured-logs (see 3).
run_scenario build_structured_logs_failing.jsonl dbt-ol build --consume-structured-logs --profiles-dir . --project-dir .
git checkout -q -- models/marts/ledger/pipeline_stages.sql

# 3. --consume-structured-logs: dbt-ol reads dbt's JSON log while dbt runs and sends
#    events as nodes (and their SQL statements) start and finish.
run_scenario build_structured_logs.jsonl dbt-ol build --consume-structured-logs --profiles-dir . --project-dir .

# 4. Under a parent run (a made-up Airflow task), with a root parent (the DAG run).
#    Format (openlineage-common 1.54 utils.get_parent_run_metadata):
#    OPENLINEAGE_PARENT_ID=<namespace>/<job name>/<run id>, same for the root.
OPENLINEAGE_PARENT_ID=airflow-prod/ledger_dag.run_dbt/0199a9f0-5e0b-7c3a-9a51-3c4d2f6b7a10 \
OPENLINEAGE_ROOT_PARENT_ID=airflow-prod/ledger_dag/0199a9f0-4d2c-7b1e-8f30-1a2b3c4d5e6f \
    run_scenario build_under_parent.jsonl dbt-ol build --profiles-dir . --project-dir .

# 5. The same parent, no root parent.
OPENLINEAGE_PARENT_ID=airflow-prod/ledger_dag.run_dbt/0199a9f0-5e0b-7c3a-9a51-3c4d2f6b7a10 \
    run_scenario build_under_parent_no_root.jsonl dbt-ol build --profiles-dir . --project-dir .

# The files are committed compressed (byte for byte what dbt-ol wrote).
gzip -9 -n -f "$OUT_DIR"/*.jsonl
