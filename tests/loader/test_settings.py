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
    names = [*SERVER_ENV, "LEDGER_CONNECT_TIMEOUT", "LEDGER_EMBEDDED_DIR", "LEDGER_MAX_LINE_BYTES"]
    empty = dict.fromkeys(names, "")
    del empty["DATABASE_HOST"]  # but an empty host is an error: see below

    assert Settings.from_env(empty) == Settings()


@pytest.mark.parametrize("host", ["", " "])
def test_an_empty_database_host_is_an_error_not_the_embedded_server(host: str) -> None:
    # Unset means "the embedded server"; set but empty is a mistake (a variable the
    # deployment forgot to fill), which must not start a stray local server.
    with pytest.raises(ConfigurationError, match="DATABASE_HOST is set but empty"):
        Settings.from_env({**SERVER_ENV, "DATABASE_HOST": host})


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
    monkeypatch.delenv("LEDGER_EMBEDDED_DIR", raising=False)  # the test run's own server
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


@pytest.mark.parametrize("name", ["LEDGER_CONNECT_TIMEOUT", "LEDGER_STATEMENT_TIMEOUT"])
@pytest.mark.parametrize(
    "value", ["inf", "-inf", "nan", "1e300", "0.0004", "0", "-1", "86401", "soon"]
)
def test_a_timeout_outside_its_range_is_refused_with_the_range(name: str, value: str) -> None:
    # inf and 1e300 overflowed the milliseconds sent to PostgreSQL, nan crashed in round(),
    # 0.0004 became 0 ms, which PostgreSQL reads as "no timeout at all".
    low = "1" if name == "LEDGER_CONNECT_TIMEOUT" else "0.001"
    with pytest.raises(ConfigurationError, match=rf"^{name}: .* from {low} to 86400 \(seconds"):
        Settings.from_env({name: value})


def test_timeouts_at_the_edges_of_their_ranges_are_accepted() -> None:
    shortest = Settings.from_env(
        {"LEDGER_CONNECT_TIMEOUT": "1", "LEDGER_STATEMENT_TIMEOUT": "0.001"}
    )
    longest = Settings.from_env(
        {"LEDGER_CONNECT_TIMEOUT": "86400", "LEDGER_STATEMENT_TIMEOUT": "86400"}
    )

    assert (shortest.connect_timeout, shortest.statement_timeout) == (1, 0.001)
    assert (longest.connect_timeout, longest.statement_timeout) == (86400, 86400)


def test_the_connect_timeout_error_says_libpq_counts_whole_seconds() -> None:
    with pytest.raises(ConfigurationError, match="libpq counts whole seconds and waits at least 2"):
        Settings.from_env({"LEDGER_CONNECT_TIMEOUT": "0.5"})


def test_the_line_cap_defaults_to_one_mebibyte_and_is_read() -> None:
    assert Settings.from_env({}).max_line_bytes == 1024 * 1024
    assert Settings.from_env({"LEDGER_MAX_LINE_BYTES": "4096"}).max_line_bytes == 4096


@pytest.mark.parametrize("value", ["1023", "1e10", "4096.5", "nan", "inf", "lots"])
def test_a_line_cap_outside_its_range_is_refused(value: str) -> None:
    with pytest.raises(ConfigurationError, match="LEDGER_MAX_LINE_BYTES"):
        Settings.from_env({"LEDGER_MAX_LINE_BYTES": value})


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
    if settings.host is None:  # the embedded server: no host, which from_env reads as that
        assert "PGHOST" not in env
        assert "DATABASE_HOST" not in env
    else:
        assert env["PGHOST"] == env["DATABASE_HOST"] == settings.host
    assert env["PGPORT"] == env["DATABASE_PORT"] == str(settings.port)
    assert env["PGDATABASE"] == env["DATABASE_NAME"] == settings.dbname
    assert env["PGUSER"] == env["DATABASE_USERNAME"] == settings.user
    assert env["PGPASSWORD"] == env["DATABASE_PASSWORD"] == settings.password
