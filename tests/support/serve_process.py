"""`ledger serve` as a process of its own, for the tests that talk to it over HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from loader.settings import Settings


@contextmanager
def ledger_serve(
    settings: Settings, log: Path, *args: str, max_line_bytes: int, **env: str
) -> Iterator[str]:
    """Run `ledger serve` logged in with `settings`, on a free port; yield its base URL.

    Only `settings` reach it (none of this process's DATABASE_*, LEDGER_* or PG*
    variables); its stderr goes to `log`, shown when it does not start.
    """
    variables = {
        **{
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("DATABASE_", "LEDGER_", "PG"))
        },
        **settings.as_env(),
        "LEDGER_SPOOL_DIR": str(settings.spool_dir),
        "LEDGER_MAX_LINE_BYTES": str(max_line_bytes),
        "LEDGER_CONNECT_TIMEOUT": "2",
        **env,
    }
    log.parent.mkdir(parents=True, exist_ok=True)
    with (
        log.open("w") as stderr,
        subprocess.Popen(
            [sys.executable, "-m", "loader", "serve", "--port", "0", *args],
            env=variables,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        ) as process,
    ):
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            assert line.startswith("ledger serve: listening on "), log.read_text()
            yield line.split()[-1]
        finally:
            process.terminate()
            process.wait(timeout=30)
