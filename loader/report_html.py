"""The HTML report: one self-contained page of the marts that a team can publish from CI.

`ledger report --html FILE` writes it. The page holds everything it shows: the styles are
inline, the charts are inline SVG drawn here (`loader.charts`), and it has no script at
all. Its Content-Security-Policy allows nothing but inline styles and `data:` images, so
even a name that slipped through as markup could neither run nor fetch anything; and
nothing slips through: every job-supplied string (names, run keys, error messages) is
escaped by `loader.markup`, which treats any plain `str` as text.

It reads the marts as the text report does (`schema.read_built`, with their owner's
rights). An aborted run or stage (an OpenLineage ABORT: stopped because of another
failure) is marked as such beside its failed status.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from loader import charts
from loader.charts import Point
from loader.connection import Connection
from loader.markup import Markup, element, join
from loader.report import HEALTH_ORDER
from loader.schema import read_built

WINDOW_DAYS = 30
LATEST_RUNS = 12
ANOMALIES = 40
# Runs drawn per pipeline in "records per run": the latest, so a busy pipeline's
# scatter stays readable and the page stays small.
SCATTER_RUNS = 400
SAMPLE_CHARS = 2000
# Shown for a missing value; between two times; after a count.
NONE, DASH, TIMES = "\u2013", "\u2013", "\u00d7"
_METRIC_LABELS = {"duration_seconds": "duration", "records_processed": "records"}

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none';"
    " form-action 'none'"
)

Row = dict[str, Any]

_BUILT = (
    "marts.pipeline_health",
    "marts.dim_pipelines",
    "marts.pipeline_daily",
    "marts.fct_pipeline_runs",
    "marts.fct_stage_runs",
    "marts.failure_reasons",
    "marts.run_anomalies",
)

_HEALTH = """
select health.pipeline_name, health.owner, health.health, health.last_run_status,
    health.last_run_at, health.last_success_at, health.consecutive_failures,
    health.success_rate_7d, health.success_rate_30d, health.duration_p95_seconds_30d,
    health.running_runs, health.stale_runs, health.stale_after_minutes,
    health.expected_schedule, health.as_of, dim.expected_stages
from marts.pipeline_health as health
left join marts.dim_pipelines as dim on health.pipeline_name = dim.pipeline_name
order by array_position(
    array(select jsonb_array_elements_text($1 -> 'health_order')), health.health),
    health.pipeline_name
"""

_DAILY = """
select pipeline_name, run_date, runs_started, runs_completed, runs_failed, runs_open,
    success_rate, records_processed, duration_p50_seconds, duration_p95_seconds
from marts.pipeline_daily
where run_date >= ($1 ->> 'first_day')::date
"""

_RECORDS = """
select pipeline_id, pipeline_name, run_key, created_at, records_processed, duration_seconds
from (
    select runs.*, row_number() over (
        partition by runs.pipeline_name order by runs.created_at desc) as latest
    from marts.fct_pipeline_runs as runs
    where runs.run_date >= ($1 ->> 'first_day')::date
        and runs.status = 'completed' and runs.records_processed is not null
) as recent
where latest <= ($1 ->> 'scatter_runs')::int
"""

_FAILURES = """
select pipeline_name, stage_name, error_signature, sum(failures) as failures,
    sum(runs_affected) as runs_affected, max(last_seen_at) as last_seen_at,
    (array_agg(sample_error_message order by last_seen_at desc))[1] as sample_error_message
from marts.failure_reasons
where run_date >= ($1 ->> 'first_day')::date
group by pipeline_name, stage_name, error_signature
order by failures desc, last_seen_at desc, error_signature
"""

_RUNS = """
select runs.*
from marts.fct_pipeline_runs as runs
where runs.pipeline_id in (
    select latest.pipeline_id from marts.fct_pipeline_runs as latest
    order by latest.created_at desc, latest.pipeline_id desc
    limit ($1 ->> 'latest_runs')::int
) or runs.status in ('pending', 'running') or runs.is_stale
order by runs.created_at desc, runs.pipeline_id desc
"""

_STAGES = """
select stages.*
from marts.fct_stage_runs as stages
where stages.pipeline_id in (
    select ids.value::bigint from jsonb_array_elements_text($1 -> 'run_ids') as ids
)
"""

_ANOMALIES = """
select pipeline_id, run_key, pipeline_name, created_at, metric, measured_value,
    baseline_mean, baseline_runs, z_score, direction
from marts.run_anomalies
where created_at >= ($1 ->> 'first_day')::date
order by created_at desc, pipeline_id desc, metric
limit ($1 ->> 'anomalies')::int
"""


@dataclass(frozen=True)
class ReportData:
    """What the page shows, read from the marts."""

    as_of: datetime
    health: list[Row]
    daily: list[Row]
    records: list[Row]
    failures: list[Row]
    runs: list[Row]
    stages: list[Row]
    anomalies: list[Row]

    @property
    def first_day(self) -> date:
        return self.as_of.date() - timedelta(days=WINDOW_DAYS - 1)

    @property
    def chart_first_day(self) -> date:
        """The charts' first day: the window's, or the first day with runs if later."""
        days = [date.fromisoformat(row["run_date"]) for row in self.daily]
        return max(self.first_day, min(days, default=self.first_day))


def read_report(conn: Connection) -> ReportData:
    """Read what the page shows from the marts, with their owner's rights."""
    as_of_rows = _read(conn, "select max(as_of) as as_of from marts.pipeline_health", {})
    as_of = _timestamp(as_of_rows[0]["as_of"]) if as_of_rows else None
    as_of = as_of or datetime.now(UTC)
    first_day = as_of.date() - timedelta(days=WINDOW_DAYS - 1)
    args = {
        "health_order": list(HEALTH_ORDER),
        "first_day": first_day.isoformat(),
        "scatter_runs": SCATTER_RUNS,
        "latest_runs": LATEST_RUNS,
        "anomalies": ANOMALIES,
    }
    runs = _read(conn, _RUNS, args)
    stages = _read(conn, _STAGES, {"run_ids": [run["pipeline_id"] for run in runs]})
    return ReportData(
        as_of=as_of,
        health=_read(conn, _HEALTH, args),
        daily=_read(conn, _DAILY, args),
        records=_read(conn, _RECORDS, args),
        failures=_read(conn, _FAILURES, args),
        runs=runs,
        stages=stages,
        anomalies=_read(conn, _ANOMALIES, args),
    )


def _read(conn: Connection, query: str, args: Mapping[str, Any]) -> list[Row]:
    return read_built(conn, query, args, relations=_BUILT)


def write_html_report(conn: Connection, path: Path) -> int:
    """Write the HTML report of the marts to `path`; return its size in bytes."""
    page = render(read_report(conn), generated_at=datetime.now(UTC)).encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(page)
    return len(page)


def render(data: ReportData, *, generated_at: datetime) -> str:
    """Return the page for `data` as HTML text."""
    open_runs = [run for run in data.runs if run["status"] in ("pending", "running")]
    stale = [run for run in data.runs if run["is_stale"]]
    body = element(
        "body",
        _header(data, generated_at),
        element(
            "main",
            _summary(data, open_runs, stale),
            _health_section(data),
            _pipelines_section(data),
            _timeline_section(data),
            _in_progress_section(data, open_runs),
            _anomalies_section(data),
            _stale_section(data, stale),
        ),
        element(
            "footer",
            "Built from schema marts by ",
            element("code", "ledger report --html"),
            f". Times are UTC. Charts cover the {WINDOW_DAYS} days up to the as-of time.",
        ),
    )
    head = element(
        "head",
        element("meta", charset="utf-8"),
        element("meta", http_equiv="Content-Security-Policy", content=CONTENT_SECURITY_POLICY),
        element("meta", name="viewport", content="width=device-width, initial-scale=1"),
        element("meta", name="referrer", content="no-referrer"),
        element("title", f"Pipeline Ledger report, {_when(data.as_of)}"),
        element("style", Markup(_CSS)),
    )
    return "<!doctype html>\n" + element("html", head, body, lang="en") + "\n"


# Sections ------------------------------------------------------------------------------


def _header(data: ReportData, generated_at: datetime) -> Markup:
    links = [
        ("health", "Health"),
        ("pipelines", "Pipelines"),
        ("timeline", "Latest runs"),
        ("in-progress", "In progress"),
        ("anomalies", "Anomalies"),
        ("stale", "Stale runs"),
    ]
    return element(
        "header",
        element("h1", "Pipeline Ledger"),
        element(
            "p",
            "As of ",
            element("time", _when(data.as_of), datetime=data.as_of.isoformat()),
            " UTC · generated ",
            element("time", _when(generated_at), datetime=generated_at.isoformat()),
            class_="meta",
        ),
        element(
            "nav",
            [element("a", label, href=f"#{anchor}") for anchor, label in links],
            aria_label="Sections",
        ),
    )


def _summary(data: ReportData, open_runs: Sequence[Row], stale: Sequence[Row]) -> Markup:
    labels: dict[str, int] = defaultdict(int)
    for row in data.health:
        labels[row["health"]] += 1
    completed = sum(row["runs_completed"] for row in data.daily)
    failed = sum(row["runs_failed"] for row in data.daily)
    started = sum(row["runs_started"] for row in data.daily)
    rate = completed / (completed + failed) if completed + failed else None
    tiles = [
        (
            str(len(data.health)),
            "pipelines",
            " · ".join(f"{labels[label]} {label}" for label in HEALTH_ORDER if labels[label]),
            "",
        ),
        (
            str(started),
            f"runs, last {WINDOW_DAYS} days",
            f"{completed} completed, {failed} failed",
            "",
        ),
        (
            charts.percent(rate) if rate is not None else NONE,
            "success rate",
            f"finished runs, last {WINDOW_DAYS} days",
            _rate_kind(rate),
        ),
        (str(len(open_runs)), "in progress", "pending or running now", ""),
        (str(len(stale)), "stale", "open, silent too long", "bad" if stale else "good"),
    ]
    return element(
        "section",
        [
            element(
                "div",
                element("strong", value),
                element("span", label),
                element("small", detail),
                class_=f"tile {kind}".strip(),
            )
            for value, label, detail, kind in tiles
        ],
        id="summary",
        class_="tiles",
        aria_label="Summary",
    )


def _health_section(data: ReportData) -> Markup:
    headers = (
        "pipeline", "owner", "health", "last run", "last success", "failures in a row",
        "success 7 d", "success 30 d", "p95 duration 30 d", "running", "stale",
    )  # fmt: skip
    rows = []
    for row in data.health:
        cells = [
            element("a", row["pipeline_name"], href=f"#{_pipeline_anchor(data, row)}"),
            row["owner"],
            _badge(row["health"]),
            join(
                [
                    _status(row["last_run_status"]),
                    " ",
                    element("small", _when(_timestamp(row["last_run_at"]))),
                ]
            )
            if row["last_run_status"]
            else NONE,
            _when(_timestamp(row["last_success_at"])),
            row["consecutive_failures"],
            _rate(row["success_rate_7d"]),
            _rate(row["success_rate_30d"]),
            _duration(row["duration_p95_seconds_30d"]),
            row["running_runs"],
            row["stale_runs"],
        ]
        rows.append(
            element(
                "tr",
                [
                    element("td", cell, data_label=header)
                    for header, cell in zip(headers, cells, strict=True)
                ],
                class_=f"health-{row['health']}",
                data_pipeline=row["pipeline_name"],
            )
        )
    table = element(
        "table",
        element("thead", element("tr", [element("th", h, scope="col") for h in headers])),
        element("tbody", rows),
        class_="health cards",
    )
    return _section(
        "health",
        "Pipeline health",
        "Worst first: stale, failing, degraded, healthy, then pipelines without runs.",
        table,
    )


def _pipelines_section(data: ReportData) -> Markup:
    daily: dict[str, dict[date, Row]] = defaultdict(dict)
    for row in data.daily:
        daily[row["pipeline_name"]][date.fromisoformat(row["run_date"])] = row
    records: dict[str, list[Row]] = defaultdict(list)
    for row in data.records:
        records[row["pipeline_name"]].append(row)
    anomalous = {(row["pipeline_id"], row["metric"]) for row in data.anomalies}
    failures: dict[str, list[Row]] = defaultdict(list)
    for row in data.failures:
        failures[row["pipeline_name"]].append(row)
    cards = [
        _pipeline_card(
            data,
            row,
            daily=daily[row["pipeline_name"]],
            records=records[row["pipeline_name"]],
            anomalous=anomalous,
            failures=failures[row["pipeline_name"]],
        )
        for row in data.health
    ]
    return _section(
        "pipelines",
        f"Pipelines, last {WINDOW_DAYS} days",
        f"{_day(data.chart_first_day)} to {_day(data.as_of.date())}: daily success rate, run"
        " duration (p50 and p95 of completed runs), records per completed run (anomalies"
        " ringed), and failures by reason.",
        cards,
    )


def _pipeline_card(
    data: ReportData,
    health: Row,
    *,
    daily: Mapping[date, Row],
    records: Sequence[Row],
    anomalous: set[tuple[int, str]],
    failures: Sequence[Row],
) -> Markup:
    name = health["pipeline_name"]
    heading = element(
        "div",
        element("h3", name),
        _badge(health["health"]),
        element("span", "owner ", element("strong", health["owner"]), class_="owner"),
        element("span", f"schedule {health['expected_schedule']}", class_="owner")
        if health["expected_schedule"]
        else None,
        class_="card-head",
    )
    if not daily:
        return element(
            "article",
            heading,
            element("p", f"No runs in the last {WINDOW_DAYS} days.", class_="empty"),
            id=_pipeline_anchor(data, health),
            class_="card",
        )
    first, last = data.chart_first_day, data.as_of.date()
    rates = {
        day: (
            _float(row["success_rate"]),
            f"{day:%Y-%m-%d}: {_rate(row['success_rate'])} of finished runs"
            f" ({row['runs_completed']} completed, {row['runs_failed']} failed,"
            f" {row['runs_open']} open)",
        )
        for day, row in daily.items()
    }
    p50 = {
        d: v for d, row in daily.items() if (v := _float(row["duration_p50_seconds"])) is not None
    }
    p95 = {
        d: v for d, row in daily.items() if (v := _float(row["duration_p95_seconds"])) is not None
    }
    points = [
        Point(
            at=at,
            value=float(row["records_processed"]),
            kind="anomaly" if (row["pipeline_id"], "records_processed") in anomalous else "run",
            title=f"{row['run_key']}: {int(row['records_processed']):,} records"
            + (" (anomaly)" if (row["pipeline_id"], "records_processed") in anomalous else ""),
        )
        for row in records
        if (at := _timestamp(row["created_at"])) is not None
    ]
    figures = [
        _figure(
            "Daily success rate",
            charts.daily_rate_bars(rates, first, last, label=f"{name}: daily success rate"),
        ),
        _figure(
            join(
                [
                    "Duration ",
                    element("span", "p50", class_="key p50"),
                    " ",
                    element("span", "p95", class_="key p95"),
                ]
            ),
            charts.daily_lines(
                {"p50": p50, "p95": p95},
                first,
                last,
                label=f"{name}: run duration p50 and p95 per day",
                fmt=charts.duration,
                ticks=charts.duration_ticks,
            )
            if p50
            else element("p", "No completed runs.", class_="empty"),
        ),
        _figure(
            "Records per run",
            charts.scatter(
                points, first, last, label=f"{name}: records per completed run", fmt=charts.count
            )
            if points
            else element("p", "No records reported.", class_="empty"),
        ),
    ]
    return element(
        "article",
        heading,
        element("div", figures, class_="figures"),
        _failure_list(failures),
        id=_pipeline_anchor(data, health),
        class_="card",
    )


def _failure_list(failures: Sequence[Row]) -> Markup:
    if not failures:
        return element("p", f"No failures in the last {WINDOW_DAYS} days.", class_="empty")
    most = max(int(row["failures"]) for row in failures)
    items = [
        element(
            "li",
            element(
                "div",
                element("span", f"{row['failures']}{TIMES}", class_="count"),
                element(
                    "span",
                    element("span", style=f"width:{100 * int(row['failures']) / most:.1f}%"),
                    class_="meter",
                    aria_hidden="true",
                ),
                element("span", row["stage_name"] or "(the run)", class_="stage-name"),
                element("small", f"last {_when(_timestamp(row['last_seen_at']))}"),
                class_="reason-head",
            ),
            element(
                "details",
                element("summary", element("code", row["error_signature"])),
                element("pre", _clip(row["sample_error_message"])),
            ),
        )
        for row in failures
    ]
    return element(
        "div", element("h4", "Failures by reason"), element("ol", items, class_="reasons")
    )


def _timeline_section(data: ReportData) -> Markup:
    # data.runs is newest first: the latest runs come first, then older open or stale ones.
    latest = data.runs[:LATEST_RUNS]
    stages = _stages_by_run(data)
    expected = {row["pipeline_name"]: _expected(row) for row in data.health}
    runs = [
        _run_gantt(data, run, stages[run["pipeline_id"]], expected.get(run["pipeline_name"], []))
        for run in latest
    ]
    return _section(
        "timeline",
        "Latest runs",
        f"The {len(runs)} latest runs, newest first, each stage from its first running event"
        " to its completion. Retries and the failed stage are marked.",
        element("div", runs, class_="runs")
        if runs
        else element("p", "No runs yet.", class_="empty"),
    )


def _run_gantt(
    data: ReportData, run: Row, stages: Sequence[Row], expected: Sequence[str]
) -> Markup:
    created = _timestamp(run["created_at"])
    assert created is not None
    is_open = run["status"] in ("pending", "running")
    end_candidates = [
        _timestamp(run["completed_at"]),
        _timestamp(run["last_event_at"]),
        *(_timestamp(stage["completed_at"]) for stage in stages),
        data.as_of if is_open else None,
    ]
    end = max((moment for moment in end_candidates if moment is not None), default=created)
    span = max((end - created).total_seconds(), 1.0)

    def position(moment: datetime | None) -> float:
        if moment is None:
            return 0.0
        return min(max((moment - created).total_seconds() / span * 100, 0.0), 100.0)

    last_event = _timestamp(run["last_event_at"])
    rows = []
    for stage in _ordered(stages, expected):
        started = _timestamp(stage["started_at"])
        completed = _timestamp(stage["completed_at"])
        status = stage["status"]
        bars = []
        if started is not None:
            stop = completed or last_event or started
            left = position(started)
            width = max(position(stop) - left, 0.6)
            bars.append(
                element(
                    "span",
                    class_=f"bar {status}",
                    style=f"left:{left:.2f}%;width:{width:.2f}%",
                    title=f"{_clock(started)}{DASH}{_clock(completed) if completed else 'now'}",
                )
            )
            if completed is None and is_open and last_event is not None:
                tail = position(data.as_of)
                if tail - position(stop) > 0.5:
                    bars.append(
                        element(
                            "span",
                            class_="bar silence",
                            style=f"left:{position(stop):.2f}%;width:{tail - position(stop):.2f}%",
                            title="no event since",
                        )
                    )
        marks = []
        if int(stage.get("attempts") or 1) > 1:
            marks.append(element("span", f"↻ {stage['attempts']} attempts", class_="mark retry"))
        if stage["is_aborted"]:
            marks.append(element("span", "aborted", class_="mark aborted"))
        if status == "failed":
            marks.append(element("span", "✕ failed", class_="mark failed"))
        detail = (
            _duration(stage["duration_seconds"])
            if stage["duration_seconds"] is not None
            else status
        )
        rows.append(
            element(
                "li",
                element("span", stage["stage_name"], class_="stage-name"),
                element("span", bars, class_="track"),
                element("span", detail, *marks, class_="stage-detail"),
                element("p", _clip(stage["error_message"]), class_="error")
                if stage["error_message"]
                else None,
                class_=f"stage {status}",
                data_stage=stage["stage_name"],
            )
        )
    facts = [
        f"started {_when(_timestamp(run['started_at']) or created)}",
        f"took {_duration(run['duration_seconds'])}"
        if run["duration_seconds"] is not None
        else None,
        f"{int(run['records_processed']):,} records"
        if run["records_processed"] is not None
        else None,
        _plural(run["retry_count"], "retry", "retries") if run["retry_count"] else None,
    ]
    return element(
        "article",
        element(
            "div",
            element("h3", run["pipeline_name"]),
            _status(run["status"]),
            _badge("stale") if run.get("is_stale") else None,
            element("span", "aborted", class_="badge aborted") if run["is_aborted"] else None,
            element("code", run["run_key"], class_="run-key"),
            class_="card-head",
        ),
        element("p", " · ".join(fact for fact in facts if fact), class_="meta"),
        element("ol", rows, class_="gantt") if rows else element("p", "No stages.", class_="empty"),
        element(
            "div",
            element("span", _clock(created)),
            element("span", _clock(end) + (" (now)" if is_open else "")),
            class_="gantt-scale",
            aria_hidden="true",
        )
        if rows
        else None,
        element("p", _clip(run["error_message"]), class_="error") if run["error_message"] else None,
        class_=f"run card {run['status']}",
        data_run_id=run["pipeline_id"],
    )


def _in_progress_section(data: ReportData, open_runs: Sequence[Row]) -> Markup:
    stages = _stages_by_run(data)
    expected = {row["pipeline_name"]: _expected(row) for row in data.health}
    items = []
    for run in open_runs:
        own = stages[run["pipeline_id"]]
        planned = max(len(own), len(expected.get(run["pipeline_name"], [])))
        done = sum(1 for stage in own if stage["status"] == "completed")
        records = sum(int(stage["records_processed"] or 0) for stage in own)
        current = [stage["stage_name"] for stage in own if stage["status"] == "running"]
        items.append(
            element(
                "li",
                element(
                    "div",
                    element("h3", run["pipeline_name"]),
                    _status(run["status"]),
                    _badge("stale") if run["is_stale"] else None,
                    element("code", run["run_key"], class_="run-key"),
                    class_="card-head",
                ),
                element(
                    "progress",
                    f"{done} of {planned}",
                    value=done,
                    max=max(planned, 1),
                ),
                element(
                    "p",
                    element("strong", f"{done} of {planned} stages done", class_="progress-text"),
                    f" · {records:,} records so far",
                    f" · now in {', '.join(current)}" if current else None,
                    f" · last event {_when(_timestamp(run['last_event_at']))}",
                    class_="meta",
                ),
                class_="card",
                data_run_id=run["pipeline_id"],
            )
        )
    return _section(
        "in-progress",
        "Runs in progress",
        "Pending or running now: stages done of those planned (registered, or expected by"
        " the catalog), and the records their stages reported so far.",
        element("ul", items, class_="plain")
        if items
        else element("p", "No run is in progress.", class_="empty"),
    )


def _anomalies_section(data: ReportData) -> Markup:
    headers = ("run", "pipeline", "when", "metric", "value", "baseline", "z")
    rows = [
        element(
            "tr",
            [
                element("td", cell, data_label=header)
                for header, cell in zip(
                    headers,
                    [
                        element("code", row["run_key"]),
                        row["pipeline_name"],
                        _when(_timestamp(row["created_at"])),
                        _METRIC_LABELS.get(row["metric"], row["metric"]),
                        join(
                            [
                                _metric(row["metric"], row["measured_value"]),
                                " ",
                                element(
                                    "span",
                                    "▲" if row["direction"] == "high" else "▼",
                                    class_=f"direction {row['direction']}",
                                ),
                            ]
                        ),
                        f"{_metric(row['metric'], row['baseline_mean'])}"
                        f" over {row['baseline_runs']} runs",
                        f"{_float(row['z_score']):+.1f}" if row["z_score"] is not None else "flat",
                    ],
                    strict=True,
                )
            ],
        )
        for row in data.anomalies
    ]
    return _section(
        "anomalies",
        "Anomalies",
        f"Completed runs of the last {WINDOW_DAYS} days whose records or duration are far from"
        " their pipeline's trailing baseline (marts.run_anomalies).",
        _table(headers, rows) if rows else element("p", "No anomaly.", class_="empty"),
    )


def _stale_section(data: ReportData, stale: Sequence[Row]) -> Markup:
    thresholds = {row["pipeline_name"]: row["stale_after_minutes"] for row in data.health}
    headers = ("run", "pipeline", "status", "last event", "silent for", "threshold", "stages")
    rows = []
    for run in stale:
        last_event = _timestamp(run["last_event_at"])
        silent = (data.as_of - last_event).total_seconds() if last_event else None
        rows.append(
            element(
                "tr",
                [
                    element("td", cell, data_label=header)
                    for header, cell in zip(
                        headers,
                        [
                            element("code", run["run_key"]),
                            run["pipeline_name"],
                            _status(run["status"]),
                            _when(last_event),
                            _duration(silent),
                            f"{thresholds.get(run['pipeline_name'], '?')} min",
                            run["stage_count"],
                        ],
                        strict=True,
                    )
                ],
                data_run_id=run["pipeline_id"],
            )
        )
    return _section(
        "stale",
        "Stale runs",
        "Open runs with no event for longer than their pipeline's stale_after_minutes.",
        _table(headers, rows) if rows else element("p", "No stale run.", class_="empty"),
    )


# Helpers -------------------------------------------------------------------------------


def _section(anchor: str, title: str, lead: str, *content: object) -> Markup:
    return element(
        "section", element("h2", title), element("p", lead, class_="lead"), *content, id=anchor
    )


def _table(headers: Sequence[str], rows: Iterable[Markup]) -> Markup:
    return element(
        "div",
        element(
            "table",
            element("thead", element("tr", [element("th", h, scope="col") for h in headers])),
            element("tbody", list(rows)),
            class_="cards",
        ),
        class_="table-wrap",
    )


def _figure(caption: object, chart: Markup) -> Markup:
    return element("figure", element("figcaption", caption), chart)


def _badge(health: str) -> Markup:
    return element("span", health, class_=f"badge {health}")


def _status(status: str) -> Markup:
    return element("span", status, class_=f"status {status}")


def _pipeline_anchor(data: ReportData, row: Row) -> str:
    # An index, never the name: a name is job-supplied and anchors are not worth escaping.
    return f"pipeline-{data.health.index(row) + 1}"


def _stages_by_run(data: ReportData) -> dict[int, list[Row]]:
    stages: dict[int, list[Row]] = defaultdict(list)
    for stage in data.stages:
        stages[stage["pipeline_id"]].append(stage)
    return stages


def _expected(health: Row) -> list[str]:
    text = health.get("expected_stages")
    return text.split("|") if text else []


def _ordered(stages: Sequence[Row], expected: Sequence[str]) -> list[Row]:
    """Stages by when they started; those not started yet in the catalog's order."""
    order = {name: index for index, name in enumerate(expected)}
    return sorted(
        stages,
        key=lambda stage: (
            stage["started_at"] is None,
            _timestamp(stage["started_at"]) or datetime.max.replace(tzinfo=UTC),
            order.get(stage["stage_name"], len(order)),
            stage["stage_name"],
        ),
    )


def _timestamp(value: str | None) -> datetime | None:
    if value is None:
        return None
    return datetime.fromisoformat(value).astimezone(UTC)


def _float(value: Decimal | float | int | None) -> float | None:
    return None if value is None else float(value)


def _rate(value: Decimal | float | None) -> str:
    return NONE if value is None else charts.percent(float(value))


def _rate_kind(rate: float | None) -> str:
    if rate is None:
        return ""
    return "good" if rate >= 0.9 else "fair" if rate >= 0.5 else "bad"


def _duration(value: Decimal | float | None) -> str:
    return NONE if value is None else charts.duration(float(value))


def _metric(metric: str, value: Decimal | float | None) -> str:
    if value is None:
        return NONE
    if metric == "duration_seconds":
        return charts.duration(float(value))
    return charts.count(float(value)) if math.isfinite(float(value)) else str(value)


def _when(moment: datetime | None) -> str:
    return NONE if moment is None else f"{moment:%Y-%m-%d %H:%M}"


def _clock(moment: datetime) -> str:
    return f"{moment:%b %-d %H:%M}"


def _day(day: date) -> str:
    return f"{day:%b %-d}"


def _clip(text: str | None) -> str:
    if text is None:
        return ""
    return text if len(text) <= SAMPLE_CHARS else text[:SAMPLE_CHARS] + "…"


_CSS = """
:root{--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--bg:#f6f8fa;--card:#fff;
--good:#1a7f37;--fair:#b35900;--bad:#cf222e;--run:#0969da;--pending:#8c959f;--accent:#8250df;
font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
font-size:15px;line-height:1.45;color:var(--fg);background:var(--bg)}
*{box-sizing:border-box}
body{margin:0}
header{background:#24292f;color:#fff;padding:16px 24px 0}
header h1{margin:0;font-size:1.4rem;letter-spacing:.01em}
header .meta{margin:2px 0 10px;color:#d0d7de}
nav{display:flex;flex-wrap:wrap;gap:2px 18px;padding-bottom:10px}
nav a{color:#fff;text-decoration:none;font-weight:600;font-size:.9rem;opacity:.85}
nav a:hover{opacity:1;text-decoration:underline}
main{max-width:1320px;margin:0 auto;padding:16px 24px 32px}
section{margin:0 0 30px}
h2{font-size:1.2rem;margin:24px 0 2px}
h3{font-size:1rem;margin:0;overflow-wrap:anywhere}
h4{font-size:.9rem;margin:12px 0 6px}
.lead{margin:0 0 12px;color:var(--muted);font-size:.9rem}
.empty{color:var(--muted);font-style:italic}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.82rem}
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:var(--bg);padding:8px;
border-radius:6px;margin:6px 0 0}
.tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:12px;
margin-top:8px}
.tile{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:10px 14px;
border-top:4px solid var(--line);display:flex;flex-direction:column}
.tile strong{font-size:1.7rem;line-height:1.15}
.tile span{font-weight:600}
.tile small{color:var(--muted)}
.tile.good{border-top-color:var(--good)}.tile.fair{border-top-color:var(--fair)}
.tile.bad{border-top-color:var(--bad)}
.tile.bad strong{color:var(--bad)}
table{border-collapse:collapse;width:100%;background:var(--card);border:1px solid var(--line);
border-radius:8px;font-size:.88rem}
th,td{text-align:left;padding:7px 10px;border-bottom:1px solid var(--line);vertical-align:top}
th{background:#eef1f4;font-size:.78rem;text-transform:uppercase;letter-spacing:.03em;
color:var(--muted)}
tbody tr:last-child td{border-bottom:0}
td{overflow-wrap:break-word}
td small,td time{white-space:nowrap}
tr.health-stale td:first-child{box-shadow:inset 4px 0 var(--bad)}
tr.health-failing td:first-child{box-shadow:inset 4px 0 var(--bad)}
tr.health-degraded td:first-child{box-shadow:inset 4px 0 var(--fair)}
tr.health-healthy td:first-child{box-shadow:inset 4px 0 var(--good)}
td a{color:inherit;font-weight:600}
.badge,.status{display:inline-block;border-radius:999px;padding:0 9px;font-size:.78rem;
font-weight:600;border:1px solid currentColor;white-space:nowrap}
.badge.stale,.badge.failing,.status.failed{color:#fff;background:var(--bad);border-color:var(--bad)}
.badge.degraded{color:var(--fair)}
.badge.healthy,.status.completed{color:var(--good)}
.badge.unknown,.status.pending{color:var(--pending)}
.status.running{color:var(--run)}
.badge.aborted,.mark.aborted{color:#fff;background:var(--accent);border-color:var(--accent)}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:14px 16px;
margin:0 0 14px;break-inside:avoid}
.card-head{display:flex;flex-wrap:wrap;align-items:center;gap:4px 10px}
.owner{color:var(--muted);font-size:.88rem}
.run-key{color:var(--muted);overflow-wrap:anywhere}
.meta{color:var(--muted);font-size:.86rem;margin:4px 0 8px}
.figures{display:grid;grid-template-columns:repeat(auto-fit,minmax(290px,1fr));gap:8px 18px;
margin-top:8px}
figure{margin:0}
figcaption{font-size:.85rem;font-weight:600;margin-bottom:2px}
.key{font-weight:400;padding:0 4px;border-radius:3px}
.key.p50{color:#fff;background:var(--run)}.key.p95{color:#fff;background:var(--accent)}
svg.chart{width:100%;height:auto;display:block;overflow:visible}
svg .axis{font-size:11px;fill:var(--muted);font-family:inherit}
svg .grid{stroke:#e6eaef;stroke-width:1}
svg .bar.good{fill:var(--good)}svg .bar.fair{fill:var(--fair)}svg .bar.bad{fill:var(--bad)}
svg .line{fill:none;stroke-width:1.8;stroke-linejoin:round}
svg .line.p50{stroke:var(--run)}svg .line.p95{stroke:var(--accent)}
svg .dot.p50{fill:var(--run)}svg .dot.p95{fill:var(--accent)}
svg .dot.run{fill:var(--run);fill-opacity:.6}
svg .dot.anomaly{fill:none;stroke:var(--bad);stroke-width:2}
.reasons{list-style:none;margin:0;padding:0}
.reasons li{padding:4px 0;border-top:1px solid var(--line)}
.reason-head{display:flex;flex-wrap:wrap;align-items:center;gap:4px 10px;font-size:.88rem}
.reason-head .count{font-weight:700;min-width:2.4em}
.meter{flex:0 0 90px;height:8px;background:var(--bg);border-radius:4px;overflow:hidden}
.meter span{display:block;height:100%;background:var(--bad)}
.reason-head small{color:var(--muted)}
details summary{cursor:pointer;font-size:.85rem;overflow-wrap:anywhere}
.runs{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,560px),1fr));gap:0 14px}
.gantt{list-style:none;margin:6px 0 0;padding:0}
.stage{display:grid;grid-template-columns:minmax(90px,150px) 1fr minmax(84px,auto);
gap:2px 10px;align-items:center;padding:3px 0;font-size:.85rem}
.stage-name{overflow-wrap:anywhere}
.track{position:relative;height:14px;background:var(--bg);border-radius:3px}
.bar{position:absolute;top:0;bottom:0;border-radius:3px;background:var(--pending)}
.bar.completed{background:var(--good)}.bar.failed{background:var(--bad)}
.bar.running{background:var(--run)}
.bar.silence{background:repeating-linear-gradient(90deg,var(--run) 0 3px,transparent 3px 7px);
opacity:.45}
.stage-detail{font-variant-numeric:tabular-nums;color:var(--muted);white-space:nowrap}
.stage.failed .stage-name{color:var(--bad);font-weight:600}
.mark{margin-left:6px;font-size:.75rem;font-weight:600;border-radius:4px;padding:0 4px}
.mark.retry{color:var(--fair);border:1px solid var(--fair)}
.mark.failed{color:#fff;background:var(--bad)}
.stage .error{grid-column:1/-1}
.error{color:var(--bad);font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;
font-size:.8rem;margin:2px 0 0;white-space:pre-wrap;overflow-wrap:anywhere}
.gantt-scale{display:flex;justify-content:space-between;color:var(--muted);font-size:.75rem;
margin:2px 94px 0 160px}
.plain{list-style:none;margin:0;padding:0}
progress{width:100%;height:12px;margin:8px 0 0;accent-color:var(--run)}
.direction.high{color:var(--bad)}.direction.low{color:var(--run)}
.table-wrap{overflow-x:auto}
footer{color:var(--muted);font-size:.8rem;text-align:center;padding:0 16px 24px}
@media (max-width:640px){
  header{padding:12px 14px 0}
  main{padding:10px 12px 24px}
  .tiles{grid-template-columns:repeat(auto-fit,minmax(105px,1fr));gap:8px}
  .tile{padding:6px 10px}
  .tile strong{font-size:1.35rem}
  .tile small{display:none}
  .stage{grid-template-columns:1fr auto}
  .stage .track{grid-column:1/-1;grid-row:2}
  .gantt-scale{margin:2px 0 0}
  table.cards,table.cards tbody,table.cards tr,table.cards td{display:block;width:100%}
  table.cards thead{display:none}
  table.cards{border:0;background:none}
  table.cards tr{background:var(--card);border:1px solid var(--line);border-radius:8px;
  margin:0 0 10px}
  table.cards tr{display:grid;grid-template-columns:1fr 1fr;gap:4px 10px;padding:8px 12px}
  table.cards td{border:0;padding:0;min-width:0}
  table.cards td::before{content:attr(data-label);display:block;color:var(--muted);
  font-size:.7rem;text-transform:uppercase;letter-spacing:.02em}
  tr[class^=health-] td:first-child{box-shadow:none}
}
@media print{
  :root{background:#fff;font-size:11pt}
  header{background:none;color:#000;padding:0}
  header .meta{color:#333}
  nav,details summary::marker{display:none}
  main{max-width:none;padding:0}
  .card,.tile,table{border-color:#999;break-inside:avoid}
  section{break-inside:auto}
  h2{break-after:avoid}
  details>*{display:block}
  a{color:inherit;text-decoration:none}
  .bar,.badge,.status,.mark,.meter span,.key{print-color-adjust:exact;
  -webkit-print-color-adjust:exact}
}
"""


def _plural(number: int, one: str, many: str) -> str:
    return f"{number} {one if number == 1 else many}"
