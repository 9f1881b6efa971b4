"""The Superset import bundle, checked without Superset (`make test-superset` imports it).

Every file Superset's importer reads is there, under one root folder; every dataset
column is a column of its mart's contract, every metric and chart reads columns and
metrics that exist; no password; the same settings give the same bytes and UUIDs.
"""

from __future__ import annotations

import io
import json
import re
import uuid
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from loader import cli
from loader.superset import (
    BUNDLE_ROOT,
    CHARTS,
    DATASETS,
    PASSWORD_MASK,
    Target,
    bundle_bytes,
    verbose_name,
)
from tests.support import PROJECT_DIR

TARGET = Target(host="db.internal", port=6543, dbname="ledger", user="metabase")
MODELS = PROJECT_DIR / "models" / "marts" / "history" / "_history__models.yml"
EXPOSURES = PROJECT_DIR / "models" / "marts" / "history" / "_history__exposures.yml"


def unpacked(data: bytes) -> dict[str, Any]:
    """The bundle's YAML files, parsed, by their path under the root folder."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        names = archive.namelist()
        assert all(name.startswith(f"{BUNDLE_ROOT}/") for name in names)
        return {
            name.removeprefix(f"{BUNDLE_ROOT}/"): yaml.safe_load(archive.read(name))
            for name in names
        }


@pytest.fixture(scope="module")
def bundle() -> dict[str, Any]:
    return unpacked(bundle_bytes(TARGET))


def of_kind(bundle: dict[str, Any], folder: str) -> dict[str, Any]:
    return {name: content for name, content in bundle.items() if name.startswith(folder + "/")}


def contract_columns() -> dict[str, dict[str, str]]:
    """Each mart's columns and dbt data types, read independently from the yml."""
    models = yaml.safe_load(MODELS.read_text(encoding="utf-8"))["models"]
    return {
        model["name"]: {column["name"]: column["data_type"] for column in model["columns"]}
        for model in models
    }


def test_the_bundle_has_superset_s_export_layout(bundle: dict[str, Any]) -> None:
    assert bundle["metadata.yaml"] == {"version": "1.0.0", "type": "Dashboard"}
    assert len(of_kind(bundle, "databases")) == 1
    assert len(of_kind(bundle, "datasets")) == len(DATASETS) == 8
    assert len(of_kind(bundle, "charts")) == len(CHARTS) >= 3
    assert len(of_kind(bundle, "dashboards")) == 1
    assert {name.split("/")[0] for name in bundle} == {
        "metadata.yaml", "databases", "datasets", "charts", "dashboards",
    }  # fmt: skip
    [database_file] = of_kind(bundle, "databases")
    database_folder = Path(database_file).stem
    assert all(Path(name).parent.name == database_folder for name in of_kind(bundle, "datasets"))
    for content in bundle.values():
        if content is not bundle["metadata.yaml"]:
            assert content["version"] == "1.0.0"
            uuid.UUID(content["uuid"])


def test_the_database_is_the_reader_login_over_tcp_with_the_password_masked(
    bundle: dict[str, Any],
) -> None:
    [database] = of_kind(bundle, "databases").values()
    assert database["sqlalchemy_uri"] == (
        f"postgresql+psycopg2://metabase:{PASSWORD_MASK}@db.internal:6543/ledger"
    )
    assert "password" not in database
    assert "masked_encrypted_extra" not in database
    assert "encrypted_extra" not in database
    assert database["allow_dml"] is False
    assert database["extra"]["engine_params"]["connect_args"]["options"] == "-c timezone=UTC"


def test_odd_login_names_and_ipv6_hosts_make_a_valid_uri() -> None:
    target = Target(host="::1", port=5432, dbname="le dger", user="bi@corp")
    assert target.sqlalchemy_uri() == (
        f"postgresql+psycopg2://bi%40corp:{PASSWORD_MASK}@[::1]:5432/le%20dger"
    )


def test_no_secret_from_the_environment_reaches_the_bundle(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DATABASE_HOST", "db.internal")
    monkeypatch.setenv("DATABASE_PASSWORD", "s3cret-loader-password")
    output = tmp_path / "bundle.zip"
    assert cli.main(["bi", "superset-bundle", "--user", "metabase", "--output", str(output)]) == 0
    data = output.read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        text = "".join(archive.read(name).decode() for name in archive.namelist())
    assert "s3cret" not in text
    assert "password" not in text.lower()


def test_the_embedded_server_s_socket_is_refused_with_a_way_out(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DATABASE_HOST", raising=False)
    output = tmp_path / "bundle.zip"
    assert cli.main(["bi", "superset-bundle", "--user", "metabase", "--output", str(output)]) == 1
    assert "--host" in capsys.readouterr().err
    assert not output.exists()
    command = ["bi", "superset-bundle", "--user", "metabase", "--output", str(output)]
    assert cli.main([*command, "--host", "db.example", "--port", "5433"]) == 0
    [database] = of_kind(unpacked(output.read_bytes()), "databases").values()
    assert "@db.example:5433/" in database["sqlalchemy_uri"]


def test_every_dataset_column_is_a_column_of_its_mart(bundle: dict[str, Any]) -> None:
    contracts = contract_columns()
    for dataset in of_kind(bundle, "datasets").values():
        mart = contracts[dataset["table_name"]]
        assert dataset["schema"] == "marts"
        names = [column["column_name"] for column in dataset["columns"]]
        assert set(names) <= set(mart)
        # Everything but bookkeeping is there; xid8 is a type BI drivers do not know.
        assert set(names) == {
            name for name, data_type in mart.items()
            if not name.startswith("_") and data_type != "xid8"
        }  # fmt: skip
        for column in dataset["columns"]:
            assert column["is_dttm"] == (mart[column["column_name"]] in {"date", "timestamptz"})
            assert column["verbose_name"]
            assert column["description"], column["column_name"]
            assert "{{" not in column["description"]
        if dataset["main_dttm_col"] is not None:
            assert dataset["main_dttm_col"] in names
        assert dataset["description"]


def test_the_daily_marts_use_run_date_and_the_run_marts_created_at(
    bundle: dict[str, Any],
) -> None:
    times = {
        dataset["table_name"]: dataset["main_dttm_col"]
        for dataset in of_kind(bundle, "datasets").values()
    }
    assert times["pipeline_daily"] == times["stage_daily"] == "run_date"
    assert times["failure_reasons"] == "run_date"
    assert times["fct_pipeline_runs"] == times["run_anomalies"] == "created_at"


def identifiers(expression: str) -> set[str]:
    """The bare names an SQL expression uses, without keywords, functions and literals."""
    without_literals = re.sub(r"'[^']*'", "", expression)
    keywords = {
        "sum", "count", "max", "abs", "nullif", "double", "precision", "percentile_cont",
        "within", "group", "order", "by", "case", "when", "then", "else", "end", "in", "and",
    }  # fmt: skip
    return set(re.findall(r"\b[a-z_][a-z0-9_]*\b", without_literals)) - keywords


def test_every_metric_reads_columns_of_its_dataset(bundle: dict[str, Any]) -> None:
    for dataset in of_kind(bundle, "datasets").values():
        columns = {column["column_name"] for column in dataset["columns"]}
        for metric in dataset["metrics"]:
            assert identifiers(metric["expression"]) <= columns, metric["metric_name"]
            # A metric named like a column would shadow it in ORDER BY and confuse people.
            assert metric["metric_name"] not in columns
            assert metric["verbose_name"]


def test_the_success_rates_are_ratios_of_sums_in_floating_point(
    bundle: dict[str, Any],
) -> None:
    daily = bundle["datasets/Pipeline_Ledger/pipeline_daily.yaml"]
    [rate] = [metric for metric in daily["metrics"] if metric["verbose_name"] == "Success rate"]
    assert rate["expression"] == (
        "sum(runs_completed)::double precision / nullif(sum(runs_completed) + sum(runs_failed), 0)"
    )
    assert rate["d3format"] == ".1%"


def test_every_chart_reads_a_dataset_and_metrics_and_columns_that_exist(
    bundle: dict[str, Any],
) -> None:
    datasets = {dataset["uuid"]: dataset for dataset in of_kind(bundle, "datasets").values()}
    for chart in of_kind(bundle, "charts").values():
        dataset = datasets[chart["dataset_uuid"]]
        metrics = {metric["metric_name"] for metric in dataset["metrics"]}
        columns = {column["column_name"] for column in dataset["columns"]}
        params = chart["params"]
        assert params["viz_type"] == chart["viz_type"]
        assert set(params.get("metrics", [])) <= metrics
        used = [*params.get("groupby", []), *params.get("all_columns", [])]
        used += [params["x_axis"]] if "x_axis" in params else []
        used += [item["subject"] for item in params["adhoc_filters"] if "subject" in item]
        assert set(used) <= columns, chart["slice_name"]
        context = json.loads(chart["query_context"])
        [query] = context["queries"]
        assert set(query.get("metrics", [])) <= metrics
        for column in query["columns"]:
            name = column["sqlExpression"] if isinstance(column, dict) else column
            assert name in columns
        for by, _ascending in query["orderby"]:
            assert by in metrics | columns
        assert context["form_data"] == params


def test_the_dashboard_is_the_exposure_with_every_chart(bundle: dict[str, Any]) -> None:
    exposure = yaml.safe_load(EXPOSURES.read_text(encoding="utf-8"))["exposures"][0]
    [dashboard] = of_kind(bundle, "dashboards").values()
    assert dashboard["dashboard_title"] == exposure["label"] == "Pipeline health"
    placed = {
        item["meta"]["uuid"]
        for item in dashboard["position"].values()
        if isinstance(item, dict) and item.get("type") == "CHART"
    }
    charts = of_kind(bundle, "charts").values()
    assert placed == {chart["uuid"] for chart in charts}
    # Every mart the exposure depends on has a chart on the dashboard.
    read = {
        dataset["table_name"]
        for dataset in of_kind(bundle, "datasets").values()
        if dataset["uuid"] in {chart["dataset_uuid"] for chart in charts}
    }
    depends_on = {re.sub(r"ref\('(\w+)'\)", r"\1", ref) for ref in exposure["depends_on"]}
    assert depends_on <= read
    for row in (item for item in dashboard["position"].values() if isinstance(item, dict)):
        if row.get("type") == "ROW":
            widths = [dashboard["position"][child]["meta"]["width"] for child in row["children"]]
            assert sum(widths) <= 12


def test_the_same_settings_give_the_same_bytes_and_other_names_other_uuids() -> None:
    assert bundle_bytes(TARGET) == bundle_bytes(TARGET)
    staging = Target(
        host="db.internal", port=6543, dbname="ledger", user="metabase", database_name="Staging"
    )
    ours = {
        content["uuid"] for content in unpacked(bundle_bytes(TARGET)).values() if "uuid" in content
    }
    theirs = {
        content["uuid"] for content in unpacked(bundle_bytes(staging)).values() if "uuid" in content
    }
    assert len(ours) == len(theirs) == 1 + len(DATASETS) + len(CHARTS) + 1
    assert not ours & theirs


@pytest.mark.parametrize(
    ("column", "label"),
    [
        ("duration_p95_seconds_30d", "Duration p95 (s), 30 days"),
        ("success_rate_7d", "Success rate, 7 days"),
        ("run_date", "Run date (UTC)"),
        ("runs_failed", "Runs failed"),
        ("is_stale", "Stale"),
    ],
)
def test_verbose_names_read_as_labels(column: str, label: str) -> None:
    assert verbose_name(column) == label
