"""Connection settings from the environment: the original stack's DATABASE_* variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from loader.errors import ConfigurationError
from loader.settings import DEFAULT_EMBEDDED_DIR, Settings

SERVER_ENV = {
    "DATABASE_HOST": "db.internal",
    "DATABASE_PORT": "6543",
    "DATABASE_NAME": "ledger_prod",
    "DATABASE_USERNAME": "loader",
    "DATABASE_PASSWORD": "s3cret pass'word",
}


def test_without_database_host_the_embedded_server_is_used_with_defaults() -> None:
    settings = Settings.from_env({})

    assert settings.is_embedded
    assert settings == Settings(
        host=None,
        port=5432,
        dbname="ledger",
        user="postgres",
        password="",
        connect_timeout=10.0,
        embedded_dir=DEFAULT_EMBEDDED_DIR,
    )


def test_empty_variables_count_as_unset() -> None:
    empty = dict.fromkeys([*SERVER_ENV, "LEDGER_CONNECT_TIMEOUT", "LEDGER_EMBEDDED_DIR"], "")

    assert Settings.from_env(empty) == Settings()


def test_database_variables_are_read() -> None:
    settings = Settings.from_env(
        {**SERVER_ENV, "LEDGER_CONNECT_TIMEOUT": "2.5", "LEDGER_EMBEDDED_DIR": "/srv/pg"}
    )

    assert not settings.is_embedded
    assert (settings.host, settings.port, settings.dbname) == ("db.internal", 6543, "ledger_prod")
    assert (settings.user, settings.password) == ("loader", "s3cret pass'word")
    assert settings.connect_timeout == 2.5
    assert settings.embedded_dir == Path("/srv/pg")


def test_process_environment_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SERVER_ENV.items():
        monkeypatch.setenv(name, value)

    assert Settings.from_env() == Settings.from_env(SERVER_ENV)
    assert Settings.from_env().host == "db.internal"


@pytest.mark.parametrize("port", ["abc", "54.32", "5432x", "0", "-1", "65536"])
def test_bad_database_port_raises_configuration_error(port: str) -> None:
    with pytest.raises(ConfigurationError, match="DATABASE_PORT"):
        Settings.from_env({**SERVER_ENV, "DATABASE_PORT": port})


def test_bad_connect_timeout_raises_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="LEDGER_CONNECT_TIMEOUT"):
        Settings.from_env({"LEDGER_CONNECT_TIMEOUT": "soon"})


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param(Settings(), id="embedded-defaults"),
        pytest.param(
            Settings(host="db.internal", port=6543, dbname="x", user="u", password="p w'\""),
            id="server",
        ),
        pytest.param(Settings(host="/tmp/pg-socket", port=5433, dbname="test_x"), id="socket"),
    ],
)
def test_as_env_round_trips_through_from_env(settings: Settings) -> None:
    env = settings.as_env()

    assert Settings.from_env(env) == settings
    assert env["PGHOST"] == env["DATABASE_HOST"] == (settings.host or "")
    assert env["PGPORT"] == env["DATABASE_PORT"] == str(settings.port)
    assert env["PGDATABASE"] == env["DATABASE_NAME"] == settings.dbname
    assert env["PGUSER"] == env["DATABASE_USERNAME"] == settings.user
    assert env["PGPASSWORD"] == env["DATABASE_PASSWORD"] == settings.password
