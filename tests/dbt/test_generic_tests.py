"""The project's generic data tests (macros/tests/), run by dbt on marts edited to break them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from psycopg import sql

pytestmark = pytest.mark.pg15

AS_OF = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
VARS = ("--vars", json.dumps({"as_of": AS_OF.isoformat()}))
# is_between on pipeline_daily: success_rate in [0, 1], runs_started >= 1, and
# records_processed, duration_p50_seconds >= 0.
DAILY_RANGE_TESTS = ("--select", "pipeline_daily,test_name:is_between")


def event(status: str, at: datetime, **fields: Any) -> dict[str, Any]:
    return {
        "run_key": "etl@1",
        "pipeline_name": "etl",
        "status": status,
        "event_time": at.isoformat(),
        **fields,
    }


@pytest.mark.parametrize(
    "case",
    [
        ("success_rate", 0.0, True),
        ("success_rate", 1.0, True),
        ("success_rate", None, True),
        ("success_rate", -0.01, False),
        ("success_rate", 1.01, False),
        ("runs_started", 1, True),
        ("runs_started", 0, False),
    ],
)
def test_is_between_bounds_are_inclusive_optional_and_nulls_pass(ledger, db, run_dbt, case):
    column, value, passes = case
    start = AS_OF - timedelta(days=1)
    ledger.emit_many(
        [
            event("running", start),
            event("completed", start + timedelta(minutes=5), records_processed=10),
        ]
    )
    run_dbt("run", *VARS)
    run_dbt("test", *DAILY_RANGE_TESTS, *VARS)
    db.execute(
        sql.SQL("update marts.pipeline_daily set {} = %s").format(sql.Identifier(column)), [value]
    )
    if passes:
        run_dbt("test", *DAILY_RANGE_TESTS, *VARS)
    else:
        with pytest.raises(AssertionError, match="failed"):
            run_dbt("test", *DAILY_RANGE_TESTS, *VARS)
