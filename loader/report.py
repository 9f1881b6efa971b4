"""A short console report of what dbt built, for `make demo`: runs, then the marts."""

from __future__ import annotations

from collections.abc import Sequence

from loader.connection import Connection

_STATUS_COUNTS = """
select status, count(*) as runs from public.pipelines group by status order by status
"""

_LATEST_RUNS = """
select id, pipeline_name, status, created_at, completed_at, records_processed,
    left(error_message, 60) as error_message
from public.pipelines
order by created_at desc, id desc
limit 8
"""

_HEALTH = """
select pipeline_name, owner, health, last_run_status, last_run_at, last_success_at,
    consecutive_failures as failures_in_a_row,
    round(success_rate_7d::numeric, 2) as success_7d,
    round(success_rate_30d::numeric, 2) as success_30d,
    round(duration_p95_seconds_30d::numeric) as p95_seconds_30d,
    running_runs as running, stale_runs as stale
from marts.pipeline_health
order by array_position(%(health_order)s::text[], health), pipeline_name
"""

# Worst first: the order of the dbt macro `health_labels`, which defines them
# (tests/operations/test_structure.py checks that the two agree).
HEALTH_ORDER = ("stale", "failing", "degraded", "healthy", "unknown")

_SLOWEST_STAGES = """
select pipeline_name, stage_name, count(*) filter (where status = 'completed') as completed,
    round(percentile_cont(0.5) within group (order by duration_seconds)
        filter (where status = 'completed')::numeric) as p50_seconds,
    round(percentile_cont(0.95) within group (order by duration_seconds)
        filter (where status = 'completed')::numeric) as p95_seconds,
    sum(retries) as retries
from marts.fct_stage_runs
where run_date >= current_date - 30
group by pipeline_name, stage_name
order by p95_seconds desc nulls last
limit 5
"""

_TOP_FAILURE_REASONS = """
select pipeline_name, coalesce(stage_name, '(run)') as stage_name,
    sum(failures) as failures, max(last_seen_at) as last_seen,
    left(error_signature, 70) as error_signature
from marts.failure_reasons
group by pipeline_name, stage_name, error_signature
order by failures desc, last_seen desc
limit 5
"""

_STALE_RUNS = """
select runs.pipeline_id, runs.pipeline_name, runs.run_key, runs.status,
    runs.last_event_at, runs.stage_count, health.stale_after_minutes
from marts.fct_pipeline_runs as runs
inner join marts.pipeline_health as health on runs.pipeline_name = health.pipeline_name
where runs.is_stale
order by runs.last_event_at
"""

_SECTIONS = (
    ("Runs by status (public.pipelines)", _STATUS_COUNTS),
    ("Latest runs", _LATEST_RUNS),
    ("Pipeline health (marts.pipeline_health)", _HEALTH),
    ("Slowest stages by p95, last 30 days (marts.fct_stage_runs)", _SLOWEST_STAGES),
    ("Top failure reasons (marts.failure_reasons)", _TOP_FAILURE_REASONS),
    ("Stale runs now (marts.fct_pipeline_runs)", _STALE_RUNS),
)


def print_report(conn: Connection) -> None:
    """Print run counts and the latest runs, then health, slow stages, failures, stale runs."""
    for title, query in _SECTIONS:
        cursor = conn.execute(query, {"health_order": list(HEALTH_ORDER)})
        headers = [column.name for column in cursor.description or ()]
        rows = cursor.fetchall()
        print(f"\n{title}")
        print(_table(headers, rows) if rows else "  (none)")


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
