"""The marts exact to the row (issue 14): in any time zone, every error signature, the
last finished run, and dbt vars that reach SQL only as quoted literals.

The history is loaded and built once (two incremental builds) on a database whose time
zone is America/New_York; each test reads what it needs, and the last one rebuilds every
mart from scratch in UTC and finds them equal.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from psycopg import sql

from loader import Ledger
from loader.connection import connect
from loader.settings import Settings
from tests.conftest import RunDbt
from tests.dbt.test_marts import MARTS, event, finished_run, mart
from tests.support import query

pytestmark = pytest.mark.pg15

ZONE = "America/New_York"
# 30 days before it is 2026-02-18T12:00Z; America/New_York moved to summer time on
# 2026-03-08, so "30 days" counted in that zone starts an hour later, at 13:00Z.
AS_OF = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
HOSTILE_OWNER = "it's '); drop table raw.runs; --\\"
BUILD = ("run", "--vars", json.dumps({"as_of": AS_OF.isoformat()}))

UUID_LOG = "see /var/log/dbt/{}.log"
UUIDS = ("4c1e0b52-8a57-4a8e-9d2c-2f1c7b7d1e01", "00000000-0000-7000-8000-000000000101")


def failed(run_key: str, start: datetime, stage: str, error: str) -> list[dict[str, Any]]:
    return finished_run(run_key, start, status="failed", failing_stage=stage, error=error)


def _flatten(events: list[Any]) -> list[dict[str, Any]]:
    flat: list[dict[str, Any]] = []
    for item in events:
        flat.extend(item if isinstance(item, list) else [item])
    return flat


@pytest.fixture(scope="module")
def built(database: Settings, run_dbt: RunDbt) -> dict[str, list[dict[str, Any]]]:
    """The history, built in America/New_York; every mart's rows."""
    with connect(database, autocommit=True) as conn:
        conn.execute(
            sql.SQL("alter database {} set timezone = {}").format(
                sql.Identifier(database.dbname), sql.Literal(ZONE)
            )
        )
    with Ledger(database) as ledger:
        for batch in _batches():
            ledger.emit_many(batch)
            run_dbt(*BUILD)
    with connect(database, autocommit=True) as conn:
        return {name: mart(conn, name) for name in MARTS}


def _batches() -> list[list[dict[str, Any]]]:
    day = AS_OF - timedelta(days=1)
    first = _flatten(
        [
            # The DST example: a success at 2026-02-18T12:30Z, a failure yesterday.
            finished_run("dst_window@1", datetime(2026, 2, 18, 12, 30, tzinfo=UTC)),
            # Overlapping runs: the success created first finishes last (5 hours later),
            # after three failures created after it.
            finished_run("overlap@1", day, minutes=299),
            failed("sig@uuid1", day, "write_log", UUID_LOG.format(UUIDS[0])),
            failed("sig@parse1", day, "parse", "can't parse 'sku'"),
            failed("sig@empty", day, "send", ""),
            failed("sig@crlf", day, "disk", "disk full\r\nat write()"),
            # A run at 23:30 New York time, 03:30Z the next day: its day is the UTC one.
            finished_run("late_evening@1", datetime(2026, 3, 19, 3, 30, tzinfo=UTC)),
        ]
    )
    second = _flatten(
        [
            failed("dst_window@2", AS_OF - timedelta(days=1, hours=2), "load", "boom"),
            *(failed(f"overlap@f{n}", day + timedelta(hours=n), "load", "boom") for n in (1, 2, 3)),
            failed("sig@uuid2", day, "write_log", UUID_LOG.format(UUIDS[1])),
            failed("sig@parse2", day, "parse", "can't parse 'qty'"),
            failed("sig@blank", day, "send", " \n "),
            failed("sig@lf", day, "disk", "disk full\nat flush()"),
            # Open, silent for two hours: stale as of AS_OF, in any zone.
            [event("stuck@1", "running", AS_OF - timedelta(hours=2))],
        ]
    )
    return [first, second]


def signatures(built: dict[str, list[dict[str, Any]]], stage: str) -> dict[str, int]:
    return {
        row["error_signature"]: row["failures"]
        for row in built["failure_reasons"]
        if row["pipeline_name"] == "sig" and row["stage_name"] == stage
    }


def health(built: dict[str, list[dict[str, Any]]], pipeline: str) -> dict[str, Any]:
    [row] = [row for row in built["pipeline_health"] if row["pipeline_name"] == pipeline]
    return row


# Time zones -------------------------------------------------------------------------------


def test_the_build_ran_in_a_non_utc_zone(built, database):
    with connect(database) as conn:
        assert query(conn, "select current_setting('TimeZone') as zone") == [{"zone": ZONE}]


def test_the_30_day_window_is_30_times_24_hours_across_a_dst_change(built):
    row = health(built, "dst_window")
    assert row["success_rate_30d"] == 0.5
    assert row["success_rate_7d"] == 0.0


def test_a_run_date_is_the_utc_day_in_any_zone(built):
    [run] = [row for row in built["fct_pipeline_runs"] if row["pipeline_name"] == "late_evening"]
    assert str(run["run_date"]) == "2026-03-19"


# Error signatures -------------------------------------------------------------------------


def test_a_uuid_inside_a_path_is_masked_with_the_whole_path(built):
    assert signatures(built, "write_log") == {"see <path>": 2}


def test_an_apostrophe_inside_a_word_opens_no_quoted_value(built):
    assert signatures(built, "parse") == {"can't parse <value>": 2}


def test_an_empty_or_blank_message_has_the_no_message_signature(built):
    assert signatures(built, "send") == {"<no message>": 2}


def test_a_crlf_message_groups_with_its_lf_twin(built):
    assert signatures(built, "disk") == {"disk full": 2}


# The last finished run --------------------------------------------------------------------


def test_the_last_success_and_the_streak_follow_completed_at(built):
    row = health(built, "overlap")
    success_end = AS_OF - timedelta(days=1) + timedelta(minutes=300)
    assert row["last_success_at"] == success_end
    assert row["consecutive_failures"] == 0
    assert row["health"] == "degraded"  # 1 of 4 in 7 days, but not failing


# dbt vars ---------------------------------------------------------------------------------


def test_var_default_owner_is_a_quoted_literal(built, database, run_dbt):
    run_dbt(
        "run", "--select", "dim_pipelines", "--vars", json.dumps({"default_owner": HOSTILE_OWNER})
    )
    with connect(database) as conn:
        owners = {row["pipeline_name"]: row["owner"] for row in mart(conn, "dim_pipelines")}
        assert query(conn, "select count(*) > 0 as kept from raw.runs") == [{"kept": True}]
    assert owners["overlap"] == HOSTILE_OWNER
    assert owners["daily_sales"] == "sales-analytics"


@pytest.mark.parametrize(
    "as_of",
    [
        "2026-03-20T12:00:00Z'::timestamptz); drop table raw.runs; --",
        "2026-03-20T12:00:00",  # no offset: read in the session's zone
    ],
)
def test_var_as_of_must_be_a_timestamp_with_an_offset(built, database, run_dbt, as_of):
    with pytest.raises(AssertionError, match="as_of must be a timestamp with an offset"):
        run_dbt("run", "--select", "pipeline_health", "--vars", json.dumps({"as_of": as_of}))
    with connect(database) as conn:
        assert query(conn, "select count(*) > 0 as kept from raw.runs") == [{"kept": True}]


def test_var_as_of_with_any_offset_is_the_same_moment(built, database, run_dbt):
    plus_one = (AS_OF + timedelta(hours=1)).isoformat().replace("+00:00", "+01:00")
    run_dbt("run", "--select", "pipeline_health", "--vars", json.dumps({"as_of": plus_one}))
    with connect(database) as conn:
        assert {row["as_of"] for row in mart(conn, "pipeline_health")} == {AS_OF}


# Last: the same marts, rebuilt from scratch in UTC -----------------------------------------


def test_every_mart_built_in_utc_from_scratch_is_the_same(built, database, run_dbt):
    with connect(database, autocommit=True) as conn:
        conn.execute(
            sql.SQL("alter database {} set timezone = 'UTC'").format(
                sql.Identifier(database.dbname)
            )
        )
    run_dbt(*BUILD, "--full-refresh")
    with connect(database) as conn:
        assert query(conn, "select current_setting('TimeZone') as zone") == [{"zone": "UTC"}]
        for name in MARTS:
            assert mart(conn, name) == built[name], name
