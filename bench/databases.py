"""A fresh database per benchmark on the server the settings name, with the raw schema."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from loader.connection import connect, drop_database, recreate_database, resolve
from loader.roles import create_roles
from loader.schema import create_raw_schema
from loader.settings import Settings

PROJECT_DIR = Path(__file__).resolve().parent.parent
# Bulk generation and full refreshes run longer than a job's statement timeout.
BENCH_STATEMENT_TIMEOUT = 3600.0


@contextmanager
def fresh_database(name: str) -> Iterator[Settings]:
    """Create database `name` (dropping an old one) with the raw schema; drop it after.

    The roles too, as `ledger init` makes them: dbt grants the marts to ledger_reader.
    """
    server = dataclasses.replace(
        resolve(Settings.from_env()), statement_timeout=BENCH_STATEMENT_TIMEOUT
    )
    settings = recreate_database(server, name)
    with connect(settings, autocommit=True) as conn:
        create_raw_schema(conn)
        create_roles(conn)
    try:
        yield settings
    finally:
        drop_database(server, name)


def run_dbt(settings: Settings, target: Path, *args: str) -> float:
    """Run a dbt command against `settings`; return dbt's own elapsed seconds for it.

    dbt's elapsed_time (run_results.json) leaves out the CLI's start-up and parsing, which
    cost the same whatever the history: the ratios compare the work on the data.
    """
    dbt = Path(sys.executable).with_name("dbt")
    subprocess.run(
        [
            str(dbt),
            "--no-use-colors",
            "--quiet",
            *args,
            "--project-dir",
            str(PROJECT_DIR),
            "--profiles-dir",
            str(PROJECT_DIR),
            "--target-path",
            str(target),
            "--log-path",
            str(target / "logs"),
            "--log-level-file",
            "none",
        ],
        env={**os.environ, **settings.as_env()},
        check=True,
    )
    results = json.loads((target / "run_results.json").read_text(encoding="utf-8"))
    return float(results["elapsed_time"])


def slowest_models(target: Path, count: int = 4) -> str:
    """The last dbt command's slowest models and their seconds, from run_results.json."""
    results = json.loads((target / "run_results.json").read_text(encoding="utf-8"))
    timed = sorted(
        (
            (float(result["execution_time"]), result["unique_id"].rsplit(".", 1)[-1])
            for result in results["results"]
        ),
        reverse=True,
    )
    return ", ".join(f"{name} {seconds:.2f}" for seconds, name in timed[:count])
