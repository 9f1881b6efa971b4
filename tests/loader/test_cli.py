"""The command line, run as shell jobs run it: a subprocess with DATABASE_* in its environment."""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql

from loader.connection import Connection
from loader.settings import Settings
from tests.support import jsonl, query

COUNTS = re.compile(r"(\d+) accepted, (\d+) duplicate, (\d+) rejected")


def ledger_cli(
    database: Settings, *args: str, stdin: bytes | None = None, program: str | None = None
) -> subprocess.CompletedProcess[str]:
    command = [program] if program else [sys.executable, "-m", "loader"]
    return subprocess.run(
        [*command, *args],
        input=stdin.decode() if stdin is not None else None,
        env={**os.environ, **database.as_env()},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def event(minute: int = 0, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "run_key": "flow-1",
        "pipeline_name": "daily_sales",
        "status": "running",
        "event_time": f"2026-01-01T10:{minute:02d}:00Z",
        **fields,
    }


def counts(output: str) -> tuple[int, ...]:
    match = COUNTS.search(output)
    assert match, output
    return tuple(int(number) for number in match.groups())


def run_events(db: Connection, pipeline_id: int) -> list[tuple[Any, ...]]:
    rows = query(
        db,
        """
        select stages.stage_name, events.status, events.records_processed,
            events.error_message, events.attempt
        from raw.run_events as events
        left join raw.stages on stages.stage_id = events.stage_id
        where events.pipeline_id = %s
        order by events.event_time, stages.stage_name nulls first
        """,
        [pipeline_id],
    )
    return [tuple(row.values()) for row in rows]


def test_start_stage_and_finish_record_a_run(database: Settings, db: Connection) -> None:
    output = ok(ledger_cli(database, "start", "daily_sales", "--stage", "a", "--stage", "b"))

    assert re.fullmatch(r"\d+\n", output)
    run_id = int(output)
    assert query(db, "select pipeline_name from raw.runs where pipeline_id = %s", [run_id]) == [
        {"pipeline_name": "daily_sales"}
    ]
    ok(ledger_cli(database, "stage", str(run_id), "a", "running"))
    ok(ledger_cli(database, "stage", str(run_id), "a", "completed", "--records", "5"))
    ok(
        ledger_cli(
            database, "stage", str(run_id), "b", "failed", "--error", "no disk", "--attempt", "2"
        )
    )
    ok(ledger_cli(database, "finish", str(run_id), "completed", "--records", "5"))

    assert run_events(db, run_id) == [
        (None, "running", None, None, 1),
        ("a", "pending", None, None, 1),
        ("b", "pending", None, None, 1),
        ("a", "running", None, None, 1),
        ("a", "completed", 5, None, 1),
        ("b", "failed", None, "no disk", 2),
        (None, "completed", 5, None, 1),
    ]
    assert query(db, "select distinct origin from raw.quarantined_events") == []


def test_start_pending_with_a_run_key_is_idempotent(database: Settings, db: Connection) -> None:
    first = ok(ledger_cli(database, "start", "daily_sales", "--run-key", "job-7", "--pending"))
    second = ok(ledger_cli(database, "start", "daily_sales", "--run-key", "job-7", "--pending"))

    assert first == second
    assert run_events(db, int(first)) == [(None, "pending", None, None, 1)]


def test_stage_of_an_unknown_run_exits_2_naming_pipeline_id(
    database: Settings, db: Connection
) -> None:
    result = ledger_cli(database, "stage", "999999", "a", "running")

    assert result.returncode == 2
    assert "pipeline_id: 999999 is not a known run id" in result.stderr
    assert result.stdout == ""
    assert query(db, "select count(*) as n from raw.run_events") == [{"n": 0}]


def test_finish_refuses_a_non_terminal_status(database: Settings, db: Connection) -> None:
    run_id = ok(ledger_cli(database, "start", "daily_sales")).strip()

    result = ledger_cli(database, "finish", run_id, "running")

    assert result.returncode == 2  # argparse's usage error
    assert "invalid choice: 'running'" in result.stderr


def test_ingest_reports_bad_lines_and_counts_and_exits_2(
    database: Settings, db: Connection, tmp_path: Path
) -> None:
    first = event()
    path = tmp_path / "events.jsonl"
    path.write_bytes(
        jsonl([first, event(records_processed=-1)])
        + b"\n"
        + jsonl([first, event(run_key="ghost", pipeline_name=None)])
    )

    result = ledger_cli(database, "ingest", str(path))

    assert result.returncode == 2
    assert (
        result.stderr
        == f"{path}: line 2: records_processed: -1 is out of range (0 to 9223372036854775807)\n"
    )
    assert counts(result.stdout) == (1, 1, 1)
    assert result.stdout.startswith(f"{path}: 1 accepted, 1 duplicate, 1 rejected, 1 parked")
    rows = query(db, "select origin, line_number from raw.quarantined_events order by 2")
    assert rows == [{"origin": str(path), "line_number": 2}]
    assert query(db, "select run_key, line_number from raw.parked_events") == [
        {"run_key": "ghost", "line_number": 5}
    ]


def test_ingest_of_a_clean_file_exits_0(database: Settings, db: Connection, tmp_path: Path) -> None:
    path = tmp_path / "clean.jsonl"
    path.write_bytes(jsonl([event(), event(stage_name="extract"), event(status="completed")]))

    result = ledger_cli(database, "ingest", str(path))

    assert ok(result) == f"{path}: 3 accepted, 0 duplicate, 0 rejected\n"
    assert result.stderr == ""
    assert query(db, "select count(*) as n from raw.run_events") == [{"n": 3}]


def test_ingest_of_several_files_exits_2_when_any_has_a_bad_line(
    database: Settings, db: Connection, tmp_path: Path
) -> None:
    clean, dirty = tmp_path / "clean.jsonl", tmp_path / "dirty.jsonl"
    clean.write_bytes(jsonl([event()]))
    dirty.write_bytes(b"{oops\n")

    result = ledger_cli(database, "ingest", str(dirty), str(clean))

    assert result.returncode == 2
    assert f"{dirty}: line 1: not valid JSON" in result.stderr
    assert [counts(line) for line in result.stdout.splitlines()] == [(0, 0, 1), (1, 0, 0)]


ONE_CONNECTION_LOGIN = "etl_jobs_one_connection_test"


def test_ingest_loads_on_a_second_connection_or_says_it_loads_on_one(
    database: Settings, db: Connection, tmp_path: Path
) -> None:
    """Batches of plain lines are split by run between two connections; a login with no
    second connection to spare loads on one, and says so."""
    path = tmp_path / "runs.jsonl"
    path.write_bytes(jsonl([event(run_key=f"flow-{n // 3}", minute=n % 3) for n in range(300)]))
    name = sql.Identifier(ONE_CONNECTION_LOGIN)
    db.execute(sql.SQL("drop role if exists {}").format(name))
    db.execute(
        sql.SQL("create role {} login connection limit 1 in role ledger_loader").format(name)
    )
    try:
        on_one = ledger_cli(
            dataclasses.replace(database, user=ONE_CONNECTION_LOGIN), "ingest", str(path)
        )
        stored_on_one = query(db, "select count(*) as n from raw.run_events")
        db.execute("truncate raw.run_events, raw.stages, raw.runs")
        on_two = ledger_cli(database, "ingest", str(path))
    finally:
        db.execute(sql.SQL("drop role {}").format(name))

    assert ok(on_one) == ok(on_two) == f"{path}: 300 accepted, 0 duplicate, 0 rejected\n"
    assert "ledger ingest: loading on one connection" in on_one.stderr
    assert "too many connections" in on_one.stderr
    assert on_two.stderr == ""
    assert stored_on_one == query(db, "select count(*) as n from raw.run_events") == [{"n": 300}]


def test_ingest_dash_reads_stdin(database: Settings, db: Connection) -> None:
    result = ledger_cli(database, "ingest", "-", stdin=jsonl([event(), event(status="completed")]))

    assert ok(result) == "-: 2 accepted, 0 duplicate, 0 rejected\n"
    assert query(db, "select count(*) as n from raw.run_events") == [{"n": 2}]


def exports(output: str) -> dict[str, str]:
    """The variables of `ledger db env`'s output, as `eval` would set them."""
    exported: dict[str, str] = {}
    for line in output.splitlines():
        keyword, assignment = shlex.split(line)
        assert keyword == "export"
        name, _, value = assignment.partition("=")
        exported[name] = value
    return exported


def test_db_env_prints_exports_that_reach_the_database(database: Settings) -> None:
    exported = exports(ok(ledger_cli(database, "db", "env")))

    # The embedded server's folder comes along, so that `db stop` finds it after eval.
    assert {k: v for k, v in exported.items() if k != "LEDGER_EMBEDDED_DIR"} == database.as_env()
    assert exported["DATABASE_HOST"] == database.host
    assert Settings.from_env(exported) == database


def test_db_env_starts_nothing_and_db_commands_work_after_eval(tmp_path: Path) -> None:
    """`eval "$(ledger db env)"`, as the README says, then `db status|stop|start`."""
    data_dir = tmp_path / "pgdata"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "PG"))}

    def db(action: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "loader", "db", action],
            env={**clean, "LEDGER_EMBEDDED_DIR": str(data_dir), **env},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    stopped = db("env", {})
    assert (stopped.returncode, stopped.stdout) == (3, "")
    assert "not running: start it with `ledger db start`" in stopped.stderr
    assert not data_dir.exists(), "db env must not start or initialise a server"

    ok(db("start", {}))
    try:
        evaluated = exports(ok(db("env", {})))
        assert "running" in ok(db("status", evaluated))
        assert ok(db("stop", evaluated)) == "stopped\n"
        assert db("status", evaluated).returncode == 3
        ok(db("start", evaluated))
        assert Settings.from_env(evaluated).names_embedded_server
    finally:
        db("stop", {})


def test_init_is_idempotent_and_keeps_data(database: Settings, db: Connection) -> None:
    run_id = ok(ledger_cli(database, "start", "daily_sales")).strip()

    assert ok(ledger_cli(database, "init")) == "raw schema ready\n"
    assert ok(ledger_cli(database, "init")) == "raw schema ready\n"

    assert query(db, "select pipeline_id from raw.runs") == [{"pipeline_id": int(run_id)}]


@pytest.mark.parametrize("args", [["--help"], ["ingest", "--help"]])
def test_ledger_console_script_answers_help(database: Settings, args: list[str]) -> None:
    script = Path(sys.prefix) / "bin" / "ledger"
    assert script.is_file()
    assert os.access(script, os.X_OK)

    output = ok(ledger_cli(database, *args, program=str(script)))

    assert output.startswith("usage: ledger")


def test_names_and_reasons_reach_the_terminal_escaped(database: Settings, db: Connection) -> None:
    """A control sequence in a job's text must not recolour the terminal or forge lines."""
    ok(ledger_cli(database, "ingest", "-", stdin=jsonl([event()])))
    forged = event(pipeline_name="daily\x1b[31m\nERROR forged line")

    result = ledger_cli(database, "ingest", "-", stdin=jsonl([forged]))

    assert result.returncode == 2
    assert "\x1b" not in result.stderr
    assert result.stderr.count("\n") == 1
    assert "daily\\x1b[31m\\nERROR forged line" in result.stderr
