"""Create the raw schema the loader writes to: events, id registries, quarantine."""

from __future__ import annotations

from loader.connection import Connection
from loader.sql_files import read_sql

# Any constant works; it only has to be the same in every process that runs init.
INIT_LOCK_KEY = 0x1ED6E2


def create_raw_schema(conn: Connection) -> None:
    """Create (idempotently) the raw schema, safe to run from several processes at once."""
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(%s)", [INIT_LOCK_KEY])
        conn.execute(read_sql("create_raw_schema"))


def raw_schema_exists(conn: Connection) -> bool:
    """Tell whether the raw schema's newest table is there (so init has run)."""
    row = conn.execute("select to_regclass('raw.quarantined_events') is not null").fetchone()
    return bool(row and row[0])
