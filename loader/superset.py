"""A Superset import bundle for the history marts: the database, datasets, charts, dashboard.

`ledger bi superset-bundle` writes the ZIP that Superset 6.1 imports (Dashboards → Import
dashboard, `superset import-dashboards`, or `POST /api/v1/dashboard/import/`): the
database as a reader login sees it, a dataset per mart with its time column, verbose
names, descriptions and ratio metrics, the charts, and the dashboard the dbt exposure
`pipeline_health_dashboard` describes.

The bundle never holds a password: the connection's URI carries Superset's own mask
(`XXXXXXXXXX`), so the import asks for the login's password (the API takes it in
`passwords`). Every object's UUID derives from its name (uuid5), so importing a newer
bundle updates the objects instead of adding copies. Column descriptions come from the
marts' dbt yml, the one place they are written; bookkeeping columns (a leading
underscore, or a type BI drivers do not know, such as xid8) are left out.
"""

from __future__ import annotations

import io
import json
import re
import uuid
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

from loader.errors import ConfigurationError
from loader.settings import REPOSITORY_ROOT

EXPORT_VERSION = "1.0.0"  # Superset's import format version (superset/utils/dict_import_export)
PASSWORD_MASK = "X" * 10  # superset.constants.PASSWORD_MASK: "ask for the password"
DEFAULT_DATABASE_NAME = "Pipeline Ledger"
MARTS_SCHEMA = "marts"
BUNDLE_ROOT = "pipeline_ledger_superset"
MODELS_YML = Path("models") / "marts" / "history" / "_history__models.yml"
EXPOSURES_YML = Path("models") / "marts" / "history" / "_history__exposures.yml"
DASHBOARD_EXPOSURE = "pipeline_health_dashboard"
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://pipeline-ledger/superset")
# A fixed timestamp for every ZIP entry: the same settings give the same bytes.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)

# dbt data types (the marts' contracts) as Superset types them; other types are left out.
_SUPERSET_TYPES = {
    "text": "TEXT",
    "date": "DATE",
    "timestamptz": "TIMESTAMP WITH TIME ZONE",
    "double precision": "DOUBLE PRECISION",
    "integer": "INTEGER",
    "bigint": "BIGINT",
    "boolean": "BOOLEAN",
}
_TEMPORAL_TYPES = frozenset({"date", "timestamptz"})
_DIMENSION_TYPES = frozenset({"text", "boolean", "date", "timestamptz"})
# Labels where spelling the column name out would read badly.
_LABELS = {
    "run_date": "Run date (UTC)",
    "is_stale": "Stale",
    "is_cataloged": "In the catalog",
    "has_runs": "Has runs",
    "pipeline_id": "Run id",
    "stage_id": "Stage id",
    "last_run_id": "Last run id",
    "as_of": "As of",
    "z_score": "z-score",
}


@dataclass(frozen=True)
class Metric:
    """A saved metric: one SQL aggregate over the dataset's columns."""

    name: str
    label: str
    expression: str
    d3format: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class Dataset:
    """A mart as a Superset dataset."""

    table: str
    time_column: str | None
    metrics: tuple[Metric, ...] = ()


@dataclass(frozen=True)
class Chart:
    """A chart on one dataset; `kind` picks how its params and query are built."""

    name: str
    dataset: str
    kind: str  # "timeseries_line", "timeseries_bar", "table", "table_raw"
    metrics: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    """Group-by columns (timeseries, table) or the columns shown (table_raw)."""
    order_by: tuple[str, bool] | None = None
    """A metric (table) or column (table_raw) and whether ascending."""
    time_grain: str | None = None
    time_range: str | None = None
    where: str | None = None
    row_limit: int = 10_000
    y_axis_format: str | None = None
    description: str | None = None
    width: int = 6
    height: int = 50


def _success_rate(completed: str, failed: str) -> str:
    # A ratio of sums, so a week's rate weighs each run once (an average of daily rates
    # would weigh a quiet day like a busy one); the cast avoids integer division.
    return f"sum({completed})::double precision / nullif(sum({completed}) + sum({failed}), 0)"


def _completed_percentile(fraction: float, column: str = "duration_seconds") -> str:
    # Like the marts, over completed runs only; percentile_cont skips the nulls.
    return (
        f"percentile_cont({fraction}) within group"
        f" (order by case when status = 'completed' then {column} end)"
    )


DATASETS: tuple[Dataset, ...] = (
    Dataset(
        "pipeline_health",
        None,
        (
            Metric("pipelines", "Pipelines", "count(*)", ",d"),
            Metric("total_running_runs", "Running runs", "sum(running_runs)", ",d"),
            Metric("total_stale_runs", "Stale runs", "sum(stale_runs)", ",d"),
        ),
    ),
    Dataset(
        "pipeline_daily",
        "run_date",
        (
            Metric("runs", "Runs", "sum(runs_started)", ",d"),
            Metric("completed_runs", "Runs completed", "sum(runs_completed)", ",d"),
            Metric("failed_runs", "Runs failed", "sum(runs_failed)", ",d"),
            Metric(
                "period_success_rate",
                "Success rate",
                _success_rate("runs_completed", "runs_failed"),
                ".1%",
                "Completed over finished runs in the period (a ratio of sums).",
            ),
            Metric("total_records_processed", "Records processed", "sum(records_processed)", ",d"),
            Metric(
                "highest_daily_p95_seconds",
                "Highest daily p95 duration (s)",
                "max(duration_p95_seconds)",
                ",.0f",
                "The worst day's p95 in the period: percentiles do not add up over days"
                " (fct_pipeline_runs has the exact p95 of any period).",
            ),
        ),
    ),
    Dataset(
        "stage_daily",
        "run_date",
        (
            Metric("total_stage_runs", "Stage runs", "sum(stage_runs)", ",d"),
            Metric(
                "highest_daily_p95_seconds",
                "Highest daily p95 duration (s)",
                "max(duration_p95_seconds)",
                ",.0f",
                "The worst day's p95 in the period: percentiles do not add up over days"
                " (fct_stage_runs has the exact p95 of any period).",
            ),
            Metric("failed_stages", "Stages failed", "sum(stages_failed)", ",d"),
            Metric("total_retries", "Retries", "sum(retries)", ",d"),
            Metric(
                "period_success_rate",
                "Success rate",
                # An aborted stage is no failure of its own, but not a success either.
                _success_rate("stages_completed", "stages_failed + stages_aborted"),
                ".1%",
                "Completed over finished stages in the period, aborted ones included"
                " (a ratio of sums).",
            ),
        ),
    ),
    Dataset(
        "failure_reasons",
        "run_date",
        (
            Metric("total_failures", "Failures", "sum(failures)", ",d"),
            Metric(
                "total_runs_affected",
                "Runs affected",
                "sum(runs_affected)",
                ",d",
                "Exact per signature; a run failing in two stages counts in each.",
            ),
            Metric("latest_seen_at", "Last seen", "max(last_seen_at)"),
        ),
    ),
    Dataset(
        "fct_pipeline_runs",
        "created_at",
        (
            Metric("runs", "Runs", "count(*)", ",d"),
            Metric(
                "success_rate",
                "Success rate",
                "sum(case when status = 'completed' then 1 else 0 end)::double precision"
                " / nullif(sum(case when status in ('completed', 'failed')"
                " then 1 else 0 end), 0)",
                ".1%",
                "Completed over finished runs.",
            ),
            Metric(
                "duration_p50_seconds",
                "Duration p50 (s)",
                _completed_percentile(0.5),
                ",.0f",
                "Median duration of the completed runs.",
            ),
            Metric(
                "duration_p95_seconds",
                "Duration p95 (s)",
                _completed_percentile(0.95),
                ",.0f",
                "95th percentile duration of the completed runs, exact for any period.",
            ),
            Metric(
                "stale_runs",
                "Stale runs",
                "sum(case when is_stale then 1 else 0 end)",
                ",d",
            ),
            Metric("total_records_processed", "Records processed", "sum(records_processed)", ",d"),
        ),
    ),
    Dataset(
        "fct_stage_runs",
        "run_date",
        (
            Metric("stage_runs", "Stage runs", "count(*)", ",d"),
            Metric(
                "duration_p95_seconds",
                "Duration p95 (s)",
                _completed_percentile(0.95),
                ",.0f",
                "95th percentile duration of the completed stages.",
            ),
            Metric("total_retries", "Retries", "sum(retries)", ",d"),
        ),
    ),
    Dataset(
        "run_anomalies",
        "created_at",
        (
            Metric("anomalies", "Anomalies", "count(*)", ",d"),
            Metric("highest_abs_z_score", "Highest |z|", "max(abs(z_score))", ".1f"),
        ),
    ),
    Dataset(
        "dim_pipelines",
        None,
        (Metric("pipelines", "Pipelines", "count(*)", ",d"),),
    ),
)

CHARTS: tuple[Chart, ...] = (
    Chart(
        "Pipeline health",
        "pipeline_health",
        "table_raw",
        columns=(
            "pipeline_name",
            "health",
            "owner",
            "last_run_status",
            "last_run_at",
            "last_success_at",
            "consecutive_failures",
            "success_rate_7d",
            "success_rate_30d",
            "duration_p95_seconds_30d",
            "running_runs",
            "stale_runs",
        ),
        order_by=("consecutive_failures", False),
        description="One row per pipeline as of the last dbt build, with its health label.",
        width=12,
    ),
    Chart(
        "Success rate by pipeline (weekly)",
        "pipeline_daily",
        "timeseries_line",
        metrics=("period_success_rate",),
        columns=("pipeline_name",),
        time_grain="P1W",
        time_range="Last quarter",
        y_axis_format=".0%",
        description="Completed over finished runs per week: a ratio of sums, not an average.",
    ),
    Chart(
        "Runs per day by outcome",
        "pipeline_daily",
        "timeseries_bar",
        metrics=("completed_runs", "failed_runs"),
        time_grain="P1D",
        time_range="Last month",
        description="Runs created each UTC day that completed or failed.",
    ),
    Chart(
        "Run duration p95 by pipeline (daily)",
        "fct_pipeline_runs",
        "timeseries_line",
        metrics=("duration_p95_seconds",),
        columns=("pipeline_name",),
        time_grain="P1D",
        time_range="Last month",
        y_axis_format=",.0f",
        description="95th percentile duration in seconds of each day's completed runs.",
    ),
    Chart(
        "Slowest stages (last month)",
        "stage_daily",
        "table",
        metrics=(
            "highest_daily_p95_seconds",
            "total_stage_runs",
            "total_retries",
            "period_success_rate",
        ),
        columns=("pipeline_name", "stage_name"),
        order_by=("highest_daily_p95_seconds", False),
        time_range="Last month",
        row_limit=15,
        description="Stages by their worst daily p95 duration, with retries and success rate.",
    ),
    Chart(
        "Top failure reasons (last month)",
        "failure_reasons",
        "table",
        metrics=("total_failures", "total_runs_affected", "latest_seen_at"),
        columns=("error_signature", "pipeline_name", "stage_name"),
        order_by=("total_failures", False),
        time_range="Last month",
        row_limit=20,
        description="Failures grouped by error signature (values masked).",
    ),
    Chart(
        "Stale runs",
        "fct_pipeline_runs",
        "table_raw",
        columns=(
            "pipeline_name",
            "run_key",
            "status",
            "owner",
            "created_at",
            "last_event_at",
        ),
        order_by=("last_event_at", True),
        where="is_stale",
        description="Open runs with no event for longer than their pipeline allows.",
    ),
    Chart(
        "Anomalies",
        "run_anomalies",
        "table_raw",
        columns=(
            "created_at",
            "pipeline_name",
            "run_key",
            "metric",
            "measured_value",
            "baseline_mean",
            "z_score",
            "direction",
        ),
        order_by=("created_at", False),
        row_limit=100,
        description="Completed runs far from their pipeline's trailing baseline.",
    ),
)


@dataclass(frozen=True)
class Target:
    """Where Superset reaches the ledger's database, and as whom."""

    host: str
    port: int
    dbname: str
    user: str
    database_name: str = DEFAULT_DATABASE_NAME
    """The name Superset lists the database under; UUIDs derive from it."""

    def sqlalchemy_uri(self) -> str:
        """The URI with Superset's password mask, so an import asks for the password."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return (
            f"postgresql+psycopg2://{quote(self.user, safe='')}:{PASSWORD_MASK}"
            f"@{host}:{self.port}/{quote(self.dbname, safe='')}"
        )


@dataclass(frozen=True)
class Column:
    """A mart's column as its dbt yml documents it."""

    name: str
    data_type: str
    description: str


@dataclass(frozen=True)
class Mart:
    """A mart as its dbt yml documents it."""

    name: str
    description: str
    columns: tuple[Column, ...] = field(default=())


def read_marts(project_dir: Path = REPOSITORY_ROOT) -> dict[str, Mart]:
    """Read the history marts' descriptions and columns from the dbt project's yml.

    `{{ doc('name') }}` references are replaced by their docs blocks' text.
    """
    path = project_dir / MODELS_YML
    try:
        models = yaml.safe_load(path.read_text(encoding="utf-8"))["models"]
    except FileNotFoundError:
        raise ConfigurationError(
            f"{path} not found: run from the Pipeline Ledger repository (it reads the marts'"
            " documentation from the dbt project)"
        ) from None
    docs = _docs_blocks(project_dir / "models")
    return {
        model["name"]: Mart(
            name=model["name"],
            description=_text(model.get("description", ""), docs),
            columns=tuple(
                Column(
                    column["name"], column["data_type"], _text(column.get("description", ""), docs)
                )
                for column in model.get("columns", ())
            ),
        )
        for model in models
    }


def read_dashboard_exposure(project_dir: Path = REPOSITORY_ROOT) -> dict[str, Any]:
    """Return the dbt exposure the dashboard implements (label, description, owner)."""
    exposures = yaml.safe_load((project_dir / EXPOSURES_YML).read_text(encoding="utf-8"))
    [exposure] = [item for item in exposures["exposures"] if item["name"] == DASHBOARD_EXPOSURE]
    return dict(exposure)


_DOCS_BLOCK = re.compile(r"{%-?\s*docs\s+(\w+)\s*-?%}(.*?){%-?\s*enddocs\s*-?%}", re.S)
_DOC_REFERENCE = re.compile(r"{{\s*doc\(\s*['\"](\w+)['\"]\s*\)\s*}}")


def _docs_blocks(models_dir: Path) -> dict[str, str]:
    return {
        match.group(1): match.group(2)
        for path in sorted(models_dir.rglob("*.md"))
        for match in _DOCS_BLOCK.finditer(path.read_text(encoding="utf-8"))
    }


def _text(description: str, docs: Mapping[str, str]) -> str:
    resolved = _DOC_REFERENCE.sub(lambda match: docs.get(match.group(1), ""), description)
    return " ".join(resolved.split())


def verbose_name(column: str) -> str:
    """A label for a column: `duration_p95_seconds_30d` → `Duration p95 (s), 30 days`."""
    if column in _LABELS:
        return _LABELS[column]
    words = column
    period = re.search(r"_(\d+)d$", words)
    if period:
        words = words[: period.start()]
    if words.endswith("_seconds"):
        words = words.removesuffix("_seconds") + " (s)"
    label = words.replace("_", " ")
    label = label[:1].upper() + label[1:]
    return f"{label}, {period.group(1)} days" if period else label


def bundle_files(target: Target, project_dir: Path = REPOSITORY_ROOT) -> dict[str, str]:
    """Return the bundle's files (path inside the root folder → YAML text), in order."""
    marts = read_marts(project_dir)
    exposure = read_dashboard_exposure(project_dir)
    ids = _Ids(target.database_name)
    database_file = f"{_file_name(target.database_name)}"
    files = {
        "metadata.yaml": _yaml({"version": EXPORT_VERSION, "type": "Dashboard"}),
        f"databases/{database_file}.yaml": _yaml(_database(target, ids)),
    }
    columns_by_table: dict[str, tuple[Column, ...]] = {}
    for dataset in DATASETS:
        if dataset.table not in marts:
            raise ConfigurationError(f"{MODELS_YML} documents no model {dataset.table}")
        mart = marts[dataset.table]
        columns_by_table[dataset.table] = _readable_columns(mart)
        files[f"datasets/{database_file}/{dataset.table}.yaml"] = _yaml(
            _dataset(dataset, mart, columns_by_table[dataset.table], ids)
        )
    datasets = {dataset.table: dataset for dataset in DATASETS}
    for number, chart in enumerate(CHARTS, start=1):
        files[f"charts/{_file_name(chart.name)}_{number}.yaml"] = _yaml(
            _chart(chart, datasets[chart.dataset], number, ids)
        )
    files[f"dashboards/{_file_name(exposure['label'])}.yaml"] = _yaml(_dashboard(exposure, ids))
    return files


def write_bundle(target: Target, output: Path, project_dir: Path = REPOSITORY_ROOT) -> Path:
    """Write the bundle to `output` (a ZIP, the same bytes for the same inputs)."""
    output.write_bytes(bundle_bytes(target, project_dir))
    return output


def bundle_bytes(target: Target, project_dir: Path = REPOSITORY_ROOT) -> bytes:
    """Return the bundle as ZIP bytes; every entry sits under one root folder, as Superset's
    own exports do (its importer drops each path's first folder)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in bundle_files(target, project_dir).items():
            entry = zipfile.ZipInfo(f"{BUNDLE_ROOT}/{name}", date_time=_ZIP_TIME)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o644 << 16
            archive.writestr(entry, text)
    return buffer.getvalue()


class _Ids:
    """Deterministic UUIDs: the same database name and object name give the same UUID."""

    def __init__(self, database_name: str) -> None:
        self.database_name = database_name

    def __call__(self, kind: str, name: str = "") -> str:
        return str(uuid.uuid5(_NAMESPACE, f"{self.database_name}/{kind}/{name}"))


def _file_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_") or "unnamed"


def _yaml(payload: Mapping[str, Any]) -> str:
    return str(yaml.safe_dump(dict(payload), sort_keys=False, allow_unicode=True))


def _database(target: Target, ids: _Ids) -> dict[str, Any]:
    return {
        "database_name": target.database_name,
        "sqlalchemy_uri": target.sqlalchemy_uri(),
        "cache_timeout": None,
        "expose_in_sqllab": True,
        "allow_run_async": False,
        "allow_ctas": False,
        "allow_cvas": False,
        "allow_dml": False,
        "allow_csv_upload": False,
        "extra": {
            "allows_virtual_table_explore": True,
            "metadata_params": {},
            # UTC whatever the login's settings: the time grains' buckets then line up
            # with run_date, the UTC day of created_at.
            "engine_params": {"connect_args": {"options": "-c timezone=UTC"}},
            "metadata_cache_timeout": {},
            "schemas_allowed_for_csv_upload": [],
        },
        "uuid": ids("database"),
        "version": EXPORT_VERSION,
    }


def _readable_columns(mart: Mart) -> tuple[Column, ...]:
    """The columns a BI tool should see: not bookkeeping, of a type every driver knows."""
    return tuple(
        column
        for column in mart.columns
        if not column.name.startswith("_") and column.data_type in _SUPERSET_TYPES
    )


def _dataset(dataset: Dataset, mart: Mart, columns: Sequence[Column], ids: _Ids) -> dict[str, Any]:
    return {
        "table_name": dataset.table,
        "main_dttm_col": dataset.time_column,
        "description": mart.description,
        "default_endpoint": None,
        "offset": 0,
        "cache_timeout": None,
        "catalog": None,
        "schema": MARTS_SCHEMA,
        "sql": None,
        "params": None,
        "template_params": None,
        "filter_select_enabled": True,
        "fetch_values_predicate": None,
        "extra": None,
        "normalize_columns": False,
        "always_filter_main_dttm": False,
        "uuid": ids("dataset", dataset.table),
        "metrics": [
            {
                "metric_name": metric.name,
                "verbose_name": metric.label,
                "metric_type": None,
                "expression": metric.expression,
                "description": metric.description,
                "d3format": metric.d3format,
                "currency": None,
                "extra": None,
                "warning_text": None,
            }
            for metric in dataset.metrics
        ],
        "columns": [
            {
                "column_name": column.name,
                "verbose_name": verbose_name(column.name),
                "is_dttm": column.data_type in _TEMPORAL_TYPES,
                "is_active": True,
                "type": _SUPERSET_TYPES[column.data_type],
                "advanced_data_type": None,
                "groupby": column.data_type in _DIMENSION_TYPES,
                "filterable": True,
                "expression": None,
                "description": column.description or None,
                "python_date_format": None,
                "extra": None,
            }
            for column in columns
        ],
        "version": EXPORT_VERSION,
        "database_uuid": ids("database"),
    }


_VIZ_TYPES = {
    "timeseries_line": "echarts_timeseries_line",
    "timeseries_bar": "echarts_timeseries_bar",
    "table": "table",
    "table_raw": "table",
}


def _chart(chart: Chart, dataset: Dataset, number: int, ids: _Ids) -> dict[str, Any]:
    """A chart's YAML: the params Explore edits, and the query context the chart data API
    runs (Superset saves both; without a query context `/api/v1/chart/<id>/data/` fails)."""
    params = _params(chart, dataset, number)
    return {
        "slice_name": chart.name,
        "description": chart.description,
        "certified_by": None,
        "certification_details": None,
        "viz_type": params["viz_type"],
        "params": params,
        "query_context": json.dumps(_query_context(chart, dataset, params, number)),
        "cache_timeout": None,
        "uuid": ids("chart", chart.name),
        "version": EXPORT_VERSION,
        "dataset_uuid": ids("dataset", chart.dataset),
    }


def _time_filter(column: str | None, time_range: str | None) -> list[dict[str, Any]]:
    if column is None or time_range is None:
        return []
    return [
        {
            "clause": "WHERE",
            "subject": column,
            "operator": "TEMPORAL_RANGE",
            "comparator": time_range,
            "expressionType": "SIMPLE",
        }
    ]


# The UTC day the marts count in: charts bucket and filter by it where the mart has it.
_DAY_COLUMN = "run_date"
_MARTS_WITH_DAY = frozenset(
    {"pipeline_daily", "stage_daily", "failure_reasons", "fct_pipeline_runs", "fct_stage_runs"}
)


def _period_column(dataset: Dataset) -> str | None:
    return _DAY_COLUMN if dataset.table in _MARTS_WITH_DAY else dataset.time_column


def _params(chart: Chart, dataset: Dataset, number: int) -> dict[str, Any]:
    viz_type = _VIZ_TYPES[chart.kind]
    params: dict[str, Any] = {
        "datasource": f"{number}__table",  # replaced on import by the dataset's id
        "viz_type": viz_type,
    }
    filters: list[dict[str, Any]] = []
    if chart.kind.startswith("timeseries"):
        x_axis = _period_column(dataset)
        if x_axis is None:
            raise ConfigurationError(f"chart {chart.name!r}: {dataset.table} has no time column")
        filters = _time_filter(x_axis, chart.time_range)
        params |= {
            "x_axis": x_axis,
            "time_grain_sqla": chart.time_grain,
            "x_axis_sort_asc": True,
            "metrics": list(chart.metrics),
            "groupby": list(chart.columns),
            "adhoc_filters": filters,
            "order_desc": True,
            "row_limit": chart.row_limit,
            "truncate_metric": True,
            "show_empty_columns": True,
            "comparison_type": "values",
            "annotation_layers": [],
            "forecastPeriods": 10,
            "forecastInterval": 0.8,
            "x_axis_title_margin": 15,
            "y_axis_title_margin": 15,
            "y_axis_title_position": "Left",
            "color_scheme": "supersetColors",
            "show_legend": True,
            "legendType": "scroll",
            "legendOrientation": "top",
            "x_axis_time_format": "smart_date",
            "rich_tooltip": True,
            "tooltipTimeFormat": "smart_date",
            "y_axis_format": chart.y_axis_format or "SMART_NUMBER",
            "truncateXAxis": True,
            "y_axis_bounds": [None, None],
            "extra_form_data": {},
        }
        if chart.kind == "timeseries_line":
            params |= {"seriesType": "line", "markerEnabled": True, "markerSize": 4}
        else:
            params |= {"stack": "Stack", "orientation": "vertical"}
        return params
    filters = _time_filter(_period_column(dataset), chart.time_range)
    if chart.where:
        filters.append({"clause": "WHERE", "sqlExpression": chart.where, "expressionType": "SQL"})
    params |= {
        "adhoc_filters": filters,
        "row_limit": chart.row_limit,
        "server_page_length": 10,
        "table_timestamp_format": "smart_date",
        "show_cell_bars": True,
        "color_pn": True,
        "extra_form_data": {},
    }
    if chart.kind == "table_raw":
        column, ascending = chart.order_by or (chart.columns[0], True)
        params |= {
            "query_mode": "raw",
            "all_columns": list(chart.columns),
            "order_by_cols": [json.dumps([column, ascending])],
            "groupby": [],
            "metrics": [],
            "percent_metrics": [],
        }
    else:
        metric, ascending = chart.order_by or (chart.metrics[0], False)
        params |= {
            "query_mode": "aggregate",
            "groupby": list(chart.columns),
            "metrics": list(chart.metrics),
            "all_columns": [],
            "percent_metrics": [],
            "timeseries_limit_metric": metric,
            "order_desc": not ascending,
        }
    return params


def _query_context(
    chart: Chart, dataset: Dataset, params: Mapping[str, Any], number: int
) -> dict[str, Any]:
    """What Explore saves as the chart's query context (superset-frontend's buildQuery)."""
    query: dict[str, Any] = {
        "filters": [
            {"col": item["subject"], "op": "TEMPORAL_RANGE", "val": item["comparator"]}
            for item in params["adhoc_filters"]
            if item.get("operator") == "TEMPORAL_RANGE"
        ],
        "extras": {
            "having": "",
            "where": " and ".join(
                f"({item['sqlExpression']})"
                for item in params["adhoc_filters"]
                if item["expressionType"] == "SQL"
            ),
        },
        "applied_time_extras": {},
        "annotation_layers": [],
        "row_limit": chart.row_limit,
        "series_limit": 0,
        "url_params": {},
        "custom_params": {},
        "custom_form_data": {},
    }
    if chart.kind.startswith("timeseries"):
        x_axis = params["x_axis"]
        query |= {
            "columns": [
                {
                    "timeGrain": chart.time_grain,
                    "columnType": "BASE_AXIS",
                    "sqlExpression": x_axis,
                    "label": x_axis,
                    "expressionType": "SQL",
                },
                *chart.columns,
            ],
            "metrics": list(chart.metrics),
            "orderby": [[chart.metrics[0], False]],
            "order_desc": True,
            "series_columns": list(chart.columns),
            "time_offsets": [],
            "post_processing": [
                {
                    "operation": "pivot",
                    "options": {
                        "index": [x_axis],
                        "columns": list(chart.columns),
                        "aggregates": {metric: {"operator": "mean"} for metric in chart.metrics},
                        "drop_missing_columns": False,
                    },
                },
                *(
                    [
                        {
                            "operation": "rename",
                            "options": {
                                "columns": {chart.metrics[0]: None},
                                "level": 0,
                                "inplace": True,
                            },
                        }
                    ]
                    if len(chart.metrics) == 1 and chart.columns
                    else []
                ),
                {"operation": "flatten"},
            ],
        }
    elif chart.kind == "table_raw":
        column, ascending = chart.order_by or (chart.columns[0], True)
        query |= {
            "columns": list(chart.columns),
            "orderby": [[column, ascending]],
            "post_processing": [],
        }
    else:
        metric, ascending = chart.order_by or (chart.metrics[0], False)
        query |= {
            "columns": list(chart.columns),
            "metrics": list(chart.metrics),
            "orderby": [[metric, ascending]],
            "order_desc": not ascending,
            "post_processing": [],
        }
    return {
        "datasource": {"id": number, "type": "table"},  # replaced on import
        "force": False,
        "queries": [query],
        "form_data": dict(params),
        "result_format": "json",
        "result_type": "full",
    }


def _dashboard(exposure: Mapping[str, Any], ids: _Ids) -> dict[str, Any]:
    """The dashboard: the health table on top, then two charts a row."""
    position: dict[str, Any] = {
        "DASHBOARD_VERSION_KEY": "v2",
        "ROOT_ID": {"type": "ROOT", "id": "ROOT_ID", "children": ["GRID_ID"]},
        "GRID_ID": {"type": "GRID", "id": "GRID_ID", "children": [], "parents": ["ROOT_ID"]},
        "HEADER_ID": {"type": "HEADER", "id": "HEADER_ID", "meta": {"text": exposure["label"]}},
    }
    rows: list[list[tuple[int, Chart]]] = []
    for number, chart in enumerate(CHARTS, start=1):
        if rows and sum(item.width for _, item in rows[-1]) + chart.width <= 12:
            rows[-1].append((number, chart))
        else:
            rows.append([(number, chart)])
    for row_number, row in enumerate(rows, start=1):
        row_id = f"ROW-{row_number}"
        position["GRID_ID"]["children"].append(row_id)
        position[row_id] = {
            "type": "ROW",
            "id": row_id,
            "children": [],
            "parents": ["ROOT_ID", "GRID_ID"],
            "meta": {"background": "BACKGROUND_TRANSPARENT"},
        }
        for number, chart in row:
            chart_id = f"CHART-{number}"
            position[row_id]["children"].append(chart_id)
            position[chart_id] = {
                "type": "CHART",
                "id": chart_id,
                "children": [],
                "parents": ["ROOT_ID", "GRID_ID", row_id],
                "meta": {
                    "chartId": number,  # replaced on import, through the uuid
                    "uuid": ids("chart", chart.name),
                    "sliceName": chart.name,
                    "width": chart.width,
                    "height": chart.height,
                },
            }
    return {
        "dashboard_title": exposure["label"],
        "description": " ".join(str(exposure.get("description", "")).split()) or None,
        "css": "",
        "slug": _file_name(exposure["label"]).lower().replace("_", "-"),
        "certified_by": None,
        "certification_details": None,
        "published": True,
        "uuid": ids("dashboard", DASHBOARD_EXPOSURE),
        "position": position,
        "metadata": {
            "color_scheme": "supersetColors",
            "refresh_frequency": 0,
            "expanded_slices": {},
            "label_colors": {},
            "shared_label_colors": [],
            "color_scheme_domain": [],
            "timed_refresh_immune_slices": [],
            "cross_filters_enabled": True,
            "chart_configuration": {},
            "native_filter_configuration": [],
            "default_filters": "{}",
        },
        "version": EXPORT_VERSION,
    }
