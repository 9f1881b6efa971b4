"""Connection settings, read once from the environment into a frozen object."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from loader.contract import DEFAULT_PARKED_MAX_AGE
from loader.errors import ConfigurationError

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_EMBEDDED_DIR = REPOSITORY_ROOT / ".pgdata"
EMBEDDED_USER = "postgres"
DEFAULT_MAX_LINE_BYTES = 1024 * 1024
# The accepted ranges, in seconds and bytes: outside them a value is a mistake.
DAY = 86_400.0
CONNECT_TIMEOUT_RANGE = (1.0, DAY)  # libpq counts whole seconds, and waits at least 2
STATEMENT_TIMEOUT_RANGE = (0.001, DAY)  # PostgreSQL counts milliseconds
MAX_LINE_BYTES_RANGE = (1024, 1024**3)


def default_spool_dir() -> Path:
    """Return `$XDG_STATE_HOME/pipeline-ledger/spool` (or `~/.local/state/...`)."""
    state_home = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(state_home) / "pipeline-ledger" / "spool"


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Where the ledger's database is and how to log in.

    `host` is None when no `DATABASE_HOST` is set: the loader then starts (or reuses) an
    embedded PostgreSQL in `embedded_dir` and fills host and port from it.
    """

    host: str | None = None
    port: int = 5432
    dbname: str = "ledger"
    user: str = EMBEDDED_USER
    password: str = ""
    connect_timeout: float = 10.0
    statement_timeout: float = 30.0
    embedded_dir: Path = DEFAULT_EMBEDDED_DIR
    spool_dir: Path = field(default_factory=default_spool_dir)
    strict: bool = False
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    """The longest line `ingest` and the spool accept (the collector's request limit too)."""
    parked_max_age: float = DEFAULT_PARKED_MAX_AGE

    @property
    def is_embedded(self) -> bool:
        """Whether the settings name no server, so the embedded one is used."""
        return self.host is None

    @property
    def names_embedded_server(self) -> bool:
        """Whether the settings reach the embedded server in `embedded_dir`.

        Either no host is set, or the host is that server's socket folder, as in the
        variables `ledger db env` exports.
        """
        return self.host is None or Path(self.host).resolve() == self.embedded_dir.resolve()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from the original stack's `DATABASE_*` variables.

        And the loader's own: `LEDGER_EMBEDDED_DIR` (the embedded server's data folder),
        `LEDGER_CONNECT_TIMEOUT` and `LEDGER_STATEMENT_TIMEOUT` (seconds), `LEDGER_SPOOL_DIR`
        (where events wait while the database is unreachable), `LEDGER_STRICT` (1: raise
        instead of spooling), `LEDGER_PARKED_MAX_AGE` (seconds an event of an unknown run
        waits for an event naming its pipeline) and `LEDGER_MAX_LINE_BYTES` (the longest line
        accepted). Timeouts outside their range (`CONNECT_TIMEOUT_RANGE`,
        `STATEMENT_TIMEOUT_RANGE`) and an empty `DATABASE_HOST` raise ConfigurationError.
        """
        env = os.environ if env is None else env
        defaults = cls()
        port = float(_positive_number(env, "DATABASE_PORT", defaults.port))
        if not port.is_integer() or port > 65535:
            raise ConfigurationError(f"DATABASE_PORT: {port:g} is not a TCP port (1 to 65535)")
        host = env.get("DATABASE_HOST")
        if host is not None and not host.strip():
            # An empty host would silently start a stray embedded server instead of the
            # database the caller meant to name.
            raise ConfigurationError(
                "DATABASE_HOST is set but empty: name the database server,"
                " or unset DATABASE_HOST to use the embedded PostgreSQL"
            )
        max_line_bytes = _number_in_range(
            env, "LEDGER_MAX_LINE_BYTES", defaults.max_line_bytes, MAX_LINE_BYTES_RANGE, "bytes"
        )
        if not float(max_line_bytes).is_integer():
            raise ConfigurationError(
                f"LEDGER_MAX_LINE_BYTES: {env['LEDGER_MAX_LINE_BYTES']!r} is not a whole number"
            )
        return cls(
            host=host,
            port=int(port),
            dbname=env.get("DATABASE_NAME") or defaults.dbname,
            user=env.get("DATABASE_USERNAME") or defaults.user,
            password=env.get("DATABASE_PASSWORD", defaults.password),
            connect_timeout=_number_in_range(
                env,
                "LEDGER_CONNECT_TIMEOUT",
                defaults.connect_timeout,
                CONNECT_TIMEOUT_RANGE,
                "seconds; libpq counts whole seconds and waits at least 2",
            ),
            statement_timeout=_number_in_range(
                env,
                "LEDGER_STATEMENT_TIMEOUT",
                defaults.statement_timeout,
                STATEMENT_TIMEOUT_RANGE,
                "seconds",
            ),
            embedded_dir=Path(env.get("LEDGER_EMBEDDED_DIR") or defaults.embedded_dir),
            spool_dir=Path(env.get("LEDGER_SPOOL_DIR") or defaults.spool_dir),
            strict=env.get("LEDGER_STRICT", "").lower() in {"1", "true", "yes"},
            max_line_bytes=int(max_line_bytes),
            parked_max_age=_positive_number(env, "LEDGER_PARKED_MAX_AGE", defaults.parked_max_age),
        )

    def as_env(self) -> dict[str, str]:
        """Return the variables that reach this database: `DATABASE_*` (dbt) and `PG*` (psql)."""
        values = {
            ("DATABASE_PORT", "PGPORT"): str(self.port),
            ("DATABASE_NAME", "PGDATABASE"): self.dbname,
            ("DATABASE_USERNAME", "PGUSER"): self.user,
            ("DATABASE_PASSWORD", "PGPASSWORD"): self.password,
        }
        if self.host is not None:  # no host: the embedded server, which an empty one refuses
            values["DATABASE_HOST", "PGHOST"] = self.host
        return {name: value for names, value in values.items() for name in names}


def _positive_number(env: Mapping[str, str], name: str, default: float) -> float:
    value = env.get(name)
    if not value:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ConfigurationError(f"{name}: {value!r} is not a number") from None
    if not number > 0 or not math.isfinite(number):
        raise ConfigurationError(f"{name}: {value!r} must be a positive number")
    return number


def _number_in_range(
    env: Mapping[str, str], name: str, default: float, bounds: tuple[float, float], unit: str
) -> float:
    """Read a number that must lie within `bounds`; inf, nan and 1e300 are outside any."""
    value = env.get(name)
    if not value:
        return default
    low, high = bounds
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not low <= number <= high:  # also False for nan
        raise ConfigurationError(
            f"{name}: {value!r} is not a number from {low:g} to {high:g} ({unit})"
        )
    return number
