"""A short console report of what dbt built, for `make demo`: runs, then the marts.

What dbt built belongs to its owner, who may replace a table by a view calling its own
functions: the report reads it only with that owner's rights (`schema.read_built`), and
escapes control characters in what it prints, so a name cannot forge terminal output.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from loader.connection import Connection
from loader.schema import read_built
from loader.terminal import printable

_STATUS_COUNTS = """
select status, count(*) as runs from public.pipelines group by status order by status
"""

_LATEST_RUNS = """
select id, pipeline_name, status, to_char(created_at, $t$YYYY-MM-DD HH24:MI$t$) as created_at,
    to_char(completed_at, $t$YYYY-MM-DD HH24:MI$t$) as completed_at, records_processed,
    left(error_message, 60) as error_message
from public.pipelines
order by pipelines.created_at desc, pipelines.id desc
limit 8
"""

_HEALTH = """
select pipeline_name, owner, health, last_run_status,
    to_char(last_run_at, $t$YYYY-MM-DD HH24:MI$t$) as last_run_at,
    to_char(last_success_at, $t$YYYY-MM-DD HH24:MI$t$) as last_success_at,
    consecutive_failures as failures_in_a_row,
    round(success_rate_7d::numeric, 2) as success_7d,
    round(success_rate_30d::numeric, 2) as success_30d,
    round(duration_p95_seconds_30d::numeric) as p95_seconds_30d,
    running_runs as running, stale_runs as stale
from marts.pipeline_health
order by array_position(
    array(select jsonb_array_elements_text($1 -> 'health_order')), health), pipeline_name
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
    sum(failures) as failures,
    to_char(max(last_seen_at), $t$YYYY-MM-DD HH24:MI$t$) as last_seen,
    left(error_signature, 70) as error_signature
from marts.failure_reasons
group by pipeline_name, stage_name, error_signature
order by failures desc, max(last_seen_at) desc
limit 5
"""

_STALE_RUNS = """
select runs.pipeline_id, runs.pipeline_name, runs.run_key, runs.status,
    to_char(runs.last_event_at, $t$YYYY-MM-DD HH24:MI$t$) as last_event_at,
    runs.stage_count, health.stale_after_minutes
from marts.fct_pipeline_runs as runs
inner join marts.pipeline_health as health on runs.pipeline_name = health.pipeline_name
where runs.is_stale
order by runs.last_event_at
"""

_BUILT = (
    "public.pipelines",
    "marts.pipeline_health",
    "marts.fct_stage_runs",
    "marts.failure_reasons",
    "marts.fct_pipeline_runs",
)

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
        rows = read_built(conn, query, {"health_order": list(HEALTH_ORDER)}, relations=_BUILT)
        print(f"\n{title}")
        if rows:
            headers = list(rows[0])
            print(_table(headers, [list(row.values()) for row in rows]))
        else:
            print("  (none)")


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines.extend("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells)
    return "\n".join(lines)


def _cell(value: Any) -> str:
    return "" if value is None else printable(str(value))
