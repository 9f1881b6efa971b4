"""A short console report of what dbt derived, for `make demo`."""

from __future__ import annotations

from collections.abc import Sequence

from loader.connection import Connection

_STATUS_COUNTS = """
select status, count(*) as runs from public.pipelines group by status order by status
"""

_LATEST_RUNS = """
select id, pipeline_name, status, created_at, completed_at, records_processed,
    left(error_message, 70) as error_message
from public.pipelines
order by created_at desc, id desc
limit 12
"""

_STAGES_OF_LATEST_FAILURE = """
select stages.id, stages.stage_name, stages.status, stages.attempts,
    stages.records_processed, left(stages.error_message, 60) as error_message
from public.pipeline_stages as stages
where stages.pipeline_id = (
    select id from public.pipelines where status = 'failed'
    order by created_at desc limit 1
)
order by stages.started_at nulls last, stages.id
"""


def print_report(conn: Connection) -> None:
    """Print run counts by status, the latest runs, and the stages of the latest failure."""
    for title, query in (
        ("Runs by status", _STATUS_COUNTS),
        ("Latest runs", _LATEST_RUNS),
        ("Stages of the latest failed run", _STAGES_OF_LATEST_FAILURE),
    ):
        cursor = conn.execute(query)
        headers = [column.name for column in cursor.description or ()]
        print(f"\n{title}")
        print(_table(headers, cursor.fetchall()))


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines.extend("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells)
    return "\n".join(lines)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if hasattr(value, "strftime"):
        return value.strftime("%Y-%m-%d %H:%M")  # type: ignore[no-any-return]
    return str(value)
