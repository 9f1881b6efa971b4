"""Connection settings, read once from the environment into a frozen object."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from loader.errors import ConfigurationError

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_EMBEDDED_DIR = REPOSITORY_ROOT / ".pgdata"
EMBEDDED_USER = "postgres"


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
        (where events wait while the database is unreachable) and `LEDGER_STRICT` (1: raise
        instead of spooling).
        """
        env = os.environ if env is None else env
        defaults = cls()
        port = float(_positive_number(env, "DATABASE_PORT", defaults.port))
        if not port.is_integer() or port > 65535:
            raise ConfigurationError(f"DATABASE_PORT: {port:g} is not a TCP port (1 to 65535)")
        return cls(
            host=env.get("DATABASE_HOST") or None,
            port=int(port),
            dbname=env.get("DATABASE_NAME") or defaults.dbname,
            user=env.get("DATABASE_USERNAME") or defaults.user,
            password=env.get("DATABASE_PASSWORD", defaults.password),
            connect_timeout=_positive_number(
                env, "LEDGER_CONNECT_TIMEOUT", defaults.connect_timeout
            ),
            statement_timeout=_positive_number(
                env, "LEDGER_STATEMENT_TIMEOUT", defaults.statement_timeout
            ),
            embedded_dir=Path(env.get("LEDGER_EMBEDDED_DIR") or defaults.embedded_dir),
            spool_dir=Path(env.get("LEDGER_SPOOL_DIR") or defaults.spool_dir),
            strict=env.get("LEDGER_STRICT", "").lower() in {"1", "true", "yes"},
        )

    def as_env(self) -> dict[str, str]:
        """Return the variables that reach this database: `DATABASE_*` (dbt) and `PG*` (psql)."""
        values = {
            ("DATABASE_HOST", "PGHOST"): self.host or "",
            ("DATABASE_PORT", "PGPORT"): str(self.port),
            ("DATABASE_NAME", "PGDATABASE"): self.dbname,
            ("DATABASE_USERNAME", "PGUSER"): self.user,
            ("DATABASE_PASSWORD", "PGPASSWORD"): self.password,
        }
        return {name: value for names, value in values.items() for name in names}


def _positive_number(env: Mapping[str, str], name: str, default: float) -> float:
    value = env.get(name)
    if not value:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ConfigurationError(f"{name}: {value!r} is not a number") from None
    if number <= 0:
        raise ConfigurationError(f"{name}: {value!r} must be positive")
    return number
