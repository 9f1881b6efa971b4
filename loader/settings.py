"""Connection settings, read once from the environment into a frozen object."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from loader.errors import ConfigurationError

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_EMBEDDED_DIR = REPOSITORY_ROOT / ".pgdata"
EMBEDDED_USER = "postgres"


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
    embedded_dir: Path = DEFAULT_EMBEDDED_DIR

    @property
    def is_embedded(self) -> bool:
        """Whether the settings name no server, so the embedded one is used."""
        return self.host is None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from the original stack's `DATABASE_*` variables.

        `LEDGER_EMBEDDED_DIR` moves the embedded server's data folder, and
        `LEDGER_CONNECT_TIMEOUT` bounds how long a connection attempt may take (seconds).
        """
        env = os.environ if env is None else env
        defaults = cls()
        try:
            port = int(env.get("DATABASE_PORT") or defaults.port)
            connect_timeout = float(env.get("LEDGER_CONNECT_TIMEOUT") or defaults.connect_timeout)
        except ValueError as error:
            raise ConfigurationError(f"DATABASE_PORT / LEDGER_CONNECT_TIMEOUT: {error}") from None
        if not 1 <= port <= 65535:
            raise ConfigurationError(f"DATABASE_PORT: {port} is not a TCP port (1 to 65535)")
        return cls(
            host=env.get("DATABASE_HOST") or None,
            port=port,
            dbname=env.get("DATABASE_NAME") or defaults.dbname,
            user=env.get("DATABASE_USERNAME") or defaults.user,
            password=env.get("DATABASE_PASSWORD", defaults.password),
            connect_timeout=connect_timeout,
            embedded_dir=Path(env.get("LEDGER_EMBEDDED_DIR") or defaults.embedded_dir),
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
