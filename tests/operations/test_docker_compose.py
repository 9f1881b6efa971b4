"""docker-compose.yml: valid against the Compose spec, with the original stack's settings.

No Docker engine runs here, so the file is validated, not started.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
import yaml

from tests.support import PROJECT_DIR

COMPOSE_FILE = PROJECT_DIR / "docker-compose.yml"
# The Compose specification's JSON schema, as shipped by docker-compose 1.29.
SCHEMA_FILE = PROJECT_DIR / "tests" / "data" / "compose-spec.schema.json"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def test_file_follows_the_compose_spec(compose):
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.Draft201909Validator(schema).validate(compose)


def test_the_spec_check_catches_a_misspelt_key(compose):
    schema = json.loads(SCHEMA_FILE.read_text())
    broken = {**compose, "services": {"postgres": {"image": "postgres", "helthcheck": {}}}}
    with pytest.raises(jsonschema.ValidationError, match="helthcheck"):
        jsonschema.Draft201909Validator(schema).validate(broken)


def test_postgres_uses_the_original_settings(compose):
    postgres = compose["services"]["postgres"]
    assert postgres["environment"] == {
        "POSTGRES_DB": "${DATABASE_NAME:-datadog}",
        "POSTGRES_USER": "${DATABASE_USERNAME:-datadog}",
        "POSTGRES_PASSWORD": "${DATABASE_PASSWORD:-datadog}",
    }
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    volume = postgres["volumes"][0].split(":")[0]
    assert volume in compose["volumes"], "data lives in a named volume"


def test_datadog_autodiscovery_labels(compose):
    labels = compose["services"]["postgres"]["labels"]
    assert json.loads(labels["com.datadoghq.ad.logs"]) == [
        {"source": "postgresql", "service": "postgres"}
    ]
    checks = json.loads(labels["com.datadoghq.ad.checks"])
    assert checks["postgres"]["instances"][0]["dbm"] is True


def test_ledger_service_builds_once_the_database_is_healthy(compose):
    ledger = compose["services"]["ledger"]
    assert ledger["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert ledger["environment"]["DATABASE_HOST"] == "postgres"
    command = " ".join(ledger["command"])
    assert "loader init" in command
    assert "dbt build" in command


def test_the_image_holds_every_folder_dbt_reads():
    project = yaml.safe_load((PROJECT_DIR / "dbt_project.yml").read_text())
    folders = {
        folder
        for key in ("model-paths", "macro-paths", "seed-paths", "test-paths")
        for folder in project[key]
    }
    dockerfile = (PROJECT_DIR / "Dockerfile").read_text()
    copied = {line.split()[1] for line in dockerfile.splitlines() if line.startswith("COPY ")}
    assert folders <= copied


def test_collector_service_is_safe_healthy_and_scraped(compose):
    collector = compose["services"]["collector"]
    assert collector["depends_on"]["postgres"]["condition"] == "service_healthy"
    command = collector["command"]
    assert command[:4] == ["python", "-m", "loader", "serve"]
    # Every interface inside the container: the token is required, not defaulted.
    assert "0.0.0.0" in command
    assert collector["environment"]["LEDGER_API_TOKEN"].startswith("${LEDGER_API_TOKEN:?")
    assert "/healthz" in " ".join(collector["healthcheck"]["test"])
    spool = collector["volumes"][0].split(":")
    assert spool[0] in compose["volumes"], "spooled events outlive the container"
    assert spool[1] == collector["environment"]["LEDGER_SPOOL_DIR"]
    checks = json.loads(collector["labels"]["com.datadoghq.ad.checks"])
    [instance] = checks["openmetrics"]["instances"]
    assert instance["openmetrics_endpoint"].endswith(":5000/metrics")
    assert json.loads(collector["labels"]["com.datadoghq.ad.logs"])[0]["service"] == (
        "ledger-collector"
    )
