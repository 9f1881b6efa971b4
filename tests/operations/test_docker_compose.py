"""docker-compose.yml: valid against the Compose spec, with the original stack's settings.

No Docker engine runs here, so the file is validated, not started. The `ledger` service's
set-up command is run, though, as compose would interpolate it, against a PostgreSQL 15
server with scram passwords (the image's major version): the collector's login it creates
is the one the `collector` service logs in with.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from loader import cli
from loader.connection import connect, recreate_database
from loader.errors import ConfigurationError, TransientError
from loader.roles import LOADER, ensure_login
from loader.settings import Settings
from tests.support import PROJECT_DIR
from tests.support.tcp_server import PG15_BIN, scram_server

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


OURS = ("DATABASE_", "LEDGER_", "PG")
"""Variables of the test's own environment that must not reach the service's command."""
_VARIABLE = re.compile(r"\$\$|\$\{(\w+)(?::([-?])([^}]*))?\}")


def interpolate(value: str, variables: Mapping[str, str]) -> str:
    """Compose's interpolation, for the forms the file uses: $$, ${X}, ${X:-default} and
    ${X:?error} (compose refuses to start when X is unset or empty)."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, operator, argument = match.groups()
        found = variables.get(name, "")
        if operator == "?" and not found:
            raise ValueError(f"required variable {name} is missing a value: {argument}")
        return found or (argument if operator == "-" else "")

    return _VARIABLE.sub(one, value)


def test_the_collector_logs_in_as_the_loader_login_the_ledger_service_creates(compose):
    ledger, collector = compose["services"]["ledger"], compose["services"]["collector"]
    # No secret in the file: the password comes from the environment, and compose refuses
    # to start without it (the owner's login is never the collector's default any more).
    for password in (
        ledger["environment"]["LEDGER_LOGIN_PASSWORD"],
        collector["environment"]["DATABASE_PASSWORD"],
    ):
        with pytest.raises(ValueError, match="LEDGER_COLLECTOR_PASSWORD is missing a value"):
            interpolate(password, {})
    assert (
        collector["environment"]["DATABASE_USERNAME"]
        == ledger["environment"]["LEDGER_COLLECTOR_USERNAME"]
    )
    *setup, build = ledger["command"][-1].split(" && ")
    assert setup[0] == "python -m loader init"
    assert "--role ledger_loader" in setup[1]
    assert build == "dbt build"  # not run here: no dbt project is built by this test
    with scram_server(PG15_BIN) as server:
        owner = recreate_database(server, "datadog")
        network = {"DATABASE_HOST": str(owner.host), "DATABASE_PORT": str(owner.port)}
        variables = {
            "DATABASE_USERNAME": owner.user,
            "DATABASE_PASSWORD": owner.password,
            "LEDGER_API_TOKEN": "a-token",
        }
        for password in ("first-pw", "rotated-pw"):  # a second `up`, the password changed
            variables["LEDGER_COLLECTOR_PASSWORD"] = password
            environment = {
                **{k: v for k, v in os.environ.items() if not k.startswith(OURS)},
                **{k: interpolate(v, variables) for k, v in ledger["environment"].items()},
                **network,
                "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            }  # fmt: skip
            command = [*ledger["command"][:-1], interpolate(" && ".join(setup), {})]
            done = subprocess.run(
                command, env=environment, capture_output=True, text=True, timeout=120, check=False
            )
            assert done.returncode == 0, done.stderr
            verb = "created" if password == "first-pw" else "updated"
            assert f"login ledger_collector {verb} in ledger_loader" in done.stdout
        settings = Settings.from_env(
            {k: interpolate(v, variables) for k, v in collector["environment"].items()} | network
        )
        with connect(settings) as conn:
            row = conn.execute(
                "select current_user::text, pg_has_role('ledger_loader', 'member'),"
                " pg_has_role('ledger_transformer', 'usage'),"
                " pg_has_role('ledger_reader', 'usage'),"
                " has_table_privilege('raw.run_events', 'insert'),"
                " has_schema_privilege('marts', 'usage')"
            ).fetchone()
        assert row == ("ledger_collector", True, False, False, True, False)
        old_password = dataclasses.replace(settings, password="first-pw")
        with pytest.raises(TransientError, match="password authentication failed"):
            connect(old_password).__enter__()
        with (
            connect(owner, autocommit=True) as conn,
            pytest.raises(ConfigurationError, match="the connected user"),
        ):
            ensure_login(conn, owner.user, LOADER, password="x")  # never the owner's login


def test_a_login_without_a_password_is_refused_clearly(monkeypatch, capsys):
    monkeypatch.delenv("LEDGER_LOGIN_PASSWORD", raising=False)
    assert cli.main(["roles", "--login", "ledger_collector"]) == 1
    assert "set LEDGER_LOGIN_PASSWORD to its password" in capsys.readouterr().err
