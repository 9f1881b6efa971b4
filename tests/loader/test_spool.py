"""The spool belongs to one database, trusts nothing it did not make, and never fails a job.

An outage is a database that refuses connections (`allow_connections false`): the API
spools exactly as when the server is down, without stopping the server other modules use.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import stat
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql

from loader import Ledger, Settings
from loader.connection import connect, drop_database, recreate_database
from loader.schema import create_raw_schema
from loader.spool import deliver_file, spool_files
from tests.support import query

T0 = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
RAW_TABLES = "raw.run_events, raw.stages, raw.runs, raw.quarantined_events"


@pytest.fixture(scope="module")
def databases(server: Settings) -> Iterator[tuple[Settings, Settings]]:
    """Two ledger databases on one server, as two teams' ledgers on one machine."""
    names = ("test_spool_a", "test_spool_b")
    pair = tuple(recreate_database(server, name) for name in names)
    for settings in pair:
        with connect(settings, autocommit=True) as conn:
            create_raw_schema(conn)
    yield pair[0], pair[1]
    for name in names:
        drop_database(server, name)


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    return tmp_path / "spool"


@pytest.fixture
def ledger_a(databases: tuple[Settings, Settings], spool_dir: Path) -> Settings:
    return _emptied(databases[0], spool_dir)


@pytest.fixture
def ledger_b(databases: tuple[Settings, Settings], spool_dir: Path) -> Settings:
    return _emptied(databases[1], spool_dir)


def _emptied(settings: Settings, spool_dir: Path) -> Settings:
    with connect(settings, autocommit=True) as conn:
        conn.execute(f"truncate {RAW_TABLES} restart identity")
    return dataclasses.replace(settings, spool_dir=spool_dir)


@contextmanager
def outage(settings: Settings) -> Iterator[None]:
    """The database refuses every new connection inside the block."""
    maintenance = dataclasses.replace(settings, dbname="postgres")
    name = sql.Identifier(settings.dbname)
    with connect(maintenance, autocommit=True) as conn:
        conn.execute(sql.SQL("alter database {} allow_connections false").format(name))
    try:
        yield
    finally:
        with connect(maintenance, autocommit=True) as conn:
            conn.execute(sql.SQL("alter database {} allow_connections true").format(name))


def event(n: int, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": str(uuid.UUID(int=n)),
        "status": "running",
        "event_time": (T0 + timedelta(minutes=n)).isoformat(),
        **fields,
    }


def spool_during_outage(settings: Settings, *events: dict[str, Any]) -> Path:
    """Record events while the database is out; return the folder they were spooled in."""
    before = set(settings.spool_dir.rglob("*.jsonl"))
    with outage(settings), Ledger(settings) as ledger:
        assert ledger.emit_many(events).spooled == len(events)
    (new_file,) = set(settings.spool_dir.rglob("*.jsonl")) - before
    return new_file.parent


def stored(settings: Settings) -> list[dict[str, Any]]:
    with connect(settings) as conn:
        return query(
            conn,
            "select runs.run_key, runs.pipeline_name, stages.stage_name, events.status,"
            " events.event_id::text from raw.run_events as events"
            " inner join raw.runs on runs.pipeline_id = events.pipeline_id"
            " left join raw.stages on stages.stage_id = events.stage_id"
            " order by events.event_id",
        )


def quarantined(settings: Settings) -> list[dict[str, Any]]:
    with connect(settings) as conn:
        return query(
            conn, "select reason, raw_line from raw.quarantined_events order by line_number"
        )


def spooled_files(settings: Settings) -> list[Path]:
    return sorted(settings.spool_dir.rglob("*.jsonl"))


# --- A spool is tied to its database -------------------------------------------------


def test_flush_delivers_only_its_own_databases_events(ledger_a: Settings, ledger_b: Settings):
    # The case: each ledger has a run 1; during an outage of ledger A, a job records
    # two stages of A's run 1 by its integer id. Flushing with B must not put them in B's run 1.
    with Ledger(ledger_a) as a, Ledger(ledger_b) as b:
        run_a = a.start_run("nightly_a", run_key="run-of-a", at=T0)
        run_b = b.start_run("unrelated_b", run_key="run-of-b", at=T0)
    assert run_a.id == run_b.id == 1
    spool_during_outage(
        ledger_a,
        event(1, pipeline_id=1, stage_name="a", status="completed"),
        event(2, pipeline_id=1, stage_name="b", status="completed"),
    )
    spool_during_outage(ledger_b, event(3, run_key="run-of-b", stage_name="x"))
    before_b = stored(ledger_b)

    with Ledger(ledger_b) as b:
        flushed_b = b.flush()

    assert (flushed_b.accepted, flushed_b.rejected) == (1, 0)
    assert {row["stage_name"] for row in stored(ledger_b)} - {None} == {"x"}, "B untouched"
    assert len(stored(ledger_b)) == len(before_b) + 1
    assert quarantined(ledger_b) == []
    assert len(spooled_files(ledger_a)) == 1, "A's events wait for A"

    with Ledger(ledger_a) as a:
        flushed_a = a.flush()

    assert (flushed_a.accepted, flushed_a.rejected) == (2, 0)
    stages_a = [(r["run_key"], r["stage_name"]) for r in stored(ledger_a) if r["stage_name"]]
    assert sorted(stages_a) == [("run-of-a", "a"), ("run-of-a", "b")]
    assert spooled_files(ledger_a) == []


def test_each_database_has_its_own_spool_folder(ledger_a: Settings, ledger_b: Settings):
    from loader.spool import database_folder  # noqa: PLC0415  # the API under test

    folder_a = spool_during_outage(ledger_a, event(1, run_key="r", pipeline_name="p"))
    folder_b = spool_during_outage(ledger_b, event(2, run_key="r", pipeline_name="p"))

    assert folder_a == database_folder(ledger_a)
    assert folder_b == database_folder(ledger_b)
    assert folder_a != folder_b
    assert folder_a.parent == folder_b.parent == ledger_a.spool_dir
    # Names that differ only where a plain slug would blur them stay apart.
    similar = [
        Settings(host="db", port=5432, dbname="a_b"),
        Settings(host="db", port=5432, dbname="a-b"),
        Settings(host="db", port=5432, dbname="a b"),
        Settings(host="db-5432", port=5432, dbname="x"),
        Settings(host="db", port=5432, dbname="5432-x"),
        Settings(host="../..", port=5432, dbname="x/../../y"),
    ]
    folders = [database_folder(settings) for settings in similar]
    assert len(set(folders)) == len(similar)
    assert all(folder.parent == similar[0].spool_dir for folder in folders), "no escape"
    # The same database by another spelling of its socket folder shares the folder.
    assert database_folder(Settings(host="/tmp/pg/", dbname="x")) == database_folder(
        Settings(host="/tmp//pg", dbname="x")
    )


# --- Hardening -------------------------------------------------------------------------


def test_spool_folders_are_0700_and_files_0600_whatever_the_umask(ledger_a: Settings):
    old_umask = os.umask(0)
    try:
        spool_during_outage(ledger_a, event(1, run_key="r", pipeline_name="p"))
    finally:
        os.umask(old_umask)

    entries = [ledger_a.spool_dir, *ledger_a.spool_dir.rglob("*")]
    modes = {
        path.relative_to(ledger_a.spool_dir.parent): stat.S_IMODE(path.stat().st_mode)
        for path in entries
    }
    assert modes == {
        path.relative_to(ledger_a.spool_dir.parent): 0o700 if path.is_dir() else 0o600
        for path in entries
    }


def test_a_looser_spool_folder_from_before_is_tightened(ledger_a: Settings):
    ledger_a.spool_dir.mkdir(mode=0o755)
    ledger_a.spool_dir.chmod(0o755)

    spool_during_outage(ledger_a, event(1, run_key="r", pipeline_name="p"))

    assert stat.S_IMODE(ledger_a.spool_dir.stat().st_mode) == 0o700


def test_flush_never_follows_a_symlink_planted_in_the_spool(ledger_a: Settings, tmp_path: Path):
    folder = spool_during_outage(ledger_a, event(1, run_key="r", pipeline_name="p"))
    secret = tmp_path / "secret.jsonl"
    planted = event(2, run_key="planted", pipeline_name="secret")
    secret.write_text(json.dumps(planted) + "\n")
    (folder / "00000000000000000000-planted.jsonl").symlink_to(secret)

    with Ledger(ledger_a) as ledger:
        result = ledger.flush()

    assert (result.accepted, result.rejected) == (1, 0)
    assert [row["run_key"] for row in stored(ledger_a)] == ["r"], "the secret was not read"
    assert (folder / "00000000000000000000-planted.jsonl").is_symlink(), "left, not removed"


def test_a_symlink_in_place_of_a_database_folder_is_refused(
    ledger_a: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    from loader.spool import database_folder  # noqa: PLC0415  # the API under test

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    ledger_a.spool_dir.mkdir()
    database_folder(ledger_a).symlink_to(elsewhere)

    with caplog.at_level(logging.ERROR, logger="loader"):
        spool_during_outage_without_file(ledger_a, event(1, run_key="r", pipeline_name="p"))

    assert list(elsewhere.iterdir()) == [], "nothing written through the symlink"
    assert any("LOST 1 events" in r.getMessage() for r in caplog.records)


def spool_during_outage_without_file(settings: Settings, *events: dict[str, Any]) -> None:
    with outage(settings), Ledger(settings) as ledger:
        ledger.emit_many(events)  # must not raise


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file to another user")
def test_flush_refuses_a_spool_file_owned_by_another_user(ledger_a: Settings):
    folder = spool_during_outage(ledger_a, event(1, run_key="r", pipeline_name="p"))
    foreign = folder / "00000000000000000000-foreign.jsonl"
    foreign.write_text(json.dumps(event(2, run_key="foreign", pipeline_name="x")))
    os.chown(foreign, 65534, 65534)

    with Ledger(ledger_a) as ledger:
        result = ledger.flush()

    assert (result.accepted, result.rejected) == (1, 0)
    assert [row["run_key"] for row in stored(ledger_a)] == ["r"]
    assert foreign.exists()


def test_flush_skips_directories_and_fifos_instead_of_crashing_or_hanging(ledger_a: Settings):
    folder = spool_during_outage(ledger_a, event(1, run_key="r", pipeline_name="p"))
    (folder / "00000000000000000000-dir.jsonl").mkdir()
    os.mkfifo(folder / "00000000000000000001-x.jsonl")
    env = {**os.environ, **ledger_a.as_env(), "LEDGER_SPOOL_DIR": str(ledger_a.spool_dir)}

    try:
        flushed = subprocess.run(
            [sys.executable, "-m", "loader", "flush"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("flush hung on a FIFO named like a spool file")

    assert flushed.returncode == 0, flushed.stderr
    assert flushed.stdout.startswith("1 accepted, 0 duplicate, 0 rejected"), flushed.stdout
    assert "not a regular file" in flushed.stderr
    assert [row["run_key"] for row in stored(ledger_a)] == ["r"]


def test_flush_skips_an_unreadable_spool_file(tmp_path: Path):
    folder = tmp_path / "spool" / "some-database"
    folder.mkdir(parents=True)
    unreadable = folder / "00000000000000000000-unreadable.jsonl"
    readable = folder / "00000000000000000001-readable.jsonl"
    unreadable.write_text("{}\n")
    readable.write_text("{}\n")
    unreadable.chmod(0)
    # Root reads anything: the reader is a forked child that gives up root for nobody.
    nobody = 65534
    if os.geteuid() == 0:
        for path in [folder, unreadable, readable]:
            os.chown(path, nobody, nobody)
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover  # the child reports through the pipe
        try:
            os.close(read)
            os.chdir(folder)  # before giving up root: pytest's tmp folders are root's
            if os.geteuid() == 0:
                os.setgid(nobody)
                os.setuid(nobody)
            report = [
                f"{path.name} {deliver_file(path, lambda stream, source: stream.read())}"
                for path in spool_files(Path())
            ]
            os.write(write, "\n".join(report).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        report = pipe.read().decode().splitlines()
    os.waitpid(child, 0)

    assert report == [f"{unreadable.name} False", f"{readable.name} True"]
    assert unreadable.exists()
    assert not readable.exists()


def test_an_unwritable_spool_does_not_raise_into_the_job_and_logs_what_was_lost(
    ledger_a: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    settings = dataclasses.replace(ledger_a, spool_dir=blocker / "spool")
    events = [event(n, run_key="lost-run", pipeline_name="p", stage_name=f"s{n}") for n in (1, 2)]

    with caplog.at_level(logging.ERROR, logger="loader"):
        spool_during_outage_without_file(settings, *events)

    (lost,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    message = lost.getMessage()
    assert "LOST 2 events" in message
    assert all(item["event_id"] in message for item in events)
    assert "run=lost-run" in message
    assert "stage=s2" in message


def test_a_full_disk_does_not_raise_into_the_job_nor_leave_a_torn_line(
    ledger_a: Settings, tmp_path: Path
):
    # RLIMIT_FSIZE makes the job's writes fail past 4 KiB with EFBIG, as a full disk would
    # with ENOSPC: the first small append fits, the big one does not.
    script = textwrap.dedent(
        """
        import dataclasses, logging, resource, signal, sys
        from loader import Ledger, Settings
        logging.basicConfig(level=logging.ERROR)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        settings = Settings.from_env()
        with Ledger(settings) as ledger:
            ledger.emit({"run_key": "small", "pipeline_name": "p", "status": "running"})
            big = [{"run_key": "big", "pipeline_name": "p", "status": "running",
                    "attributes": {"pad": "x" * 100}} for _ in range(100)]
            ledger.emit_many(big)
        print("the job went on")
        """
    )
    env = {**os.environ, **ledger_a.as_env(), "LEDGER_SPOOL_DIR": str(ledger_a.spool_dir)}
    with outage(ledger_a):
        done = subprocess.run(
            [sys.executable, "-c", script],
            env=env,
            cwd=Path(__file__).resolve().parents[2],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    assert (done.returncode, done.stdout) == (0, "the job went on\n"), done.stderr
    assert "LOST 100 events" in done.stderr
    (spooled,) = spooled_files(ledger_a)
    content = spooled.read_bytes()
    assert content.endswith(b"\n")
    assert content.count(b"\n") == 1, "only the small event, whole; the partial append undone"
    with Ledger(ledger_a) as ledger:
        assert ledger.flush().accepted == 1


def test_a_torn_append_does_not_glue_onto_the_next_event(ledger_a: Settings):
    first = event(1, run_key="r", pipeline_name="p")
    second = event(2, run_key="r", pipeline_name="p", stage_name="s")
    with outage(ledger_a), Ledger(ledger_a) as ledger:
        ledger.emit(first)
        (spooled,) = spooled_files(ledger_a)
        torn = b'{"event_id": "00000000-0000-0000-0000-00000000000a", "run_k'
        with spooled.open("ab") as stream:  # a writer killed in the middle of its line
            stream.write(torn)
        ledger.emit(second)

    with Ledger(ledger_a) as ledger:
        result = ledger.flush()

    assert (result.accepted, result.rejected) == (2, 1)
    assert [row["event_id"] for row in stored(ledger_a)] == [first["event_id"], second["event_id"]]
    ((reason, raw),) = [(row["reason"], bytes(row["raw_line"])) for row in quarantined(ledger_a)]
    assert raw == torn
    assert reason.startswith("not valid JSON")


def test_spooled_events_are_kept_under_the_right_database_after_a_restart_of_the_job(
    ledger_a: Settings,
):
    # A new process (a new Spool) for the same database finds the events in the same folder.
    folder_1 = spool_during_outage(ledger_a, event(1, run_key="r", pipeline_name="p"))
    folder_2 = spool_during_outage(ledger_a, event(2, run_key="r", pipeline_name="p"))

    assert folder_1 == folder_2
    with Ledger(ledger_a) as ledger:
        assert ledger.flush().accepted == 2
