"""Bounded memory and per-line limits: no input can exhaust memory or lose a batch.

`ledger ingest` reads a line up to `LEDGER_MAX_LINE_BYTES` (1 MiB by default) and
quarantines what is over with its first bytes; a value the database refuses costs its line
only, never the good lines of its batch.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from psycopg import sql

from loader.cli import EXIT_REJECTED
from loader.connection import Connection, connect, drop_database
from loader.ingest import ingest_stream
from loader.settings import Settings
from loader.sql_files import read_sql
from tests.support import query

MIB = 1024 * 1024
CAP = MIB  # the default LEDGER_MAX_LINE_BYTES
T0 = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)


def good_line(n: int, padding: int = 0, **fields: Any) -> bytes:
    document: dict[str, Any] = {
        "event_id": str(uuid.UUID(int=n)),
        "run_key": "limits",
        "pipeline_name": "limits",
        "status": "running",
        "event_time": (T0 + timedelta(seconds=n)).isoformat(),
        **fields,
    }
    if padding:
        document["attributes"] = {"pad": ""}
        bare = len(json.dumps(document).encode())
        document["attributes"] = {"pad": "x" * (padding - bare)}
    line = json.dumps(document).encode()
    assert not padding or len(line) == padding
    return line


# --- Peak memory of an `ingest` process ------------------------------------------------


def endless_line(byte: bytes, size: int) -> Iterator[bytes]:
    """`size` bytes of `byte` and no newline, made on the fly (never held whole)."""
    chunk = byte * MIB
    for _ in range(size // MIB):
        yield chunk


# Starts `ledger ingest -` and reports its peak RSS. Linux starts a child's peak at its
# parent's size (kept across fork and exec), so the parent must be small: this process,
# not the test's (pytest holds far more than an ingest does).
PEAK_RSS_LAUNCHER = """
import os, sys
child = os.posix_spawn(sys.executable, [sys.executable, "-m", "loader", "ingest", "-"], os.environ)
_, status, usage = os.wait4(child, 0)
with open(sys.argv[1], "w") as report:
    report.write(f"{usage.ru_maxrss} {os.waitstatus_to_exitcode(status)}")
"""


def ingest_peak_rss(database: Settings, chunks: Iterable[bytes]) -> tuple[int, str, str]:
    """Run `ledger ingest -` on the chunks; return its peak RSS in bytes, stdout, stderr."""
    env = {**os.environ, **database.as_env()}
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile("r") as measured,
    ):
        process = subprocess.Popen(
            [sys.executable, "-c", PEAK_RSS_LAUNCHER, measured.name],
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=err,
            env=env,
        )
        assert process.stdin is not None
        try:
            for chunk in chunks:
                process.stdin.write(chunk)
        except BrokenPipeError:
            pass
        finally:
            process.stdin.close()
        assert process.wait() == 0
        peak_kib, exit_code = measured.read().split()
        assert int(exit_code) in (0, EXIT_REJECTED), err.read().decode()
        out.seek(0)
        err.seek(0)
        return int(peak_kib) * 1024, out.read().decode(), err.read().decode()


@pytest.fixture(scope="module")
def baseline_rss(database: Settings) -> int:
    """An ingest of one small line: the interpreter, psycopg and the loader."""
    peak, stdout, _ = ingest_peak_rss(database, [good_line(1_000_000) + b"\n"])
    assert stdout == "-: 1 accepted, 0 duplicate, 0 rejected\n"
    return peak


@pytest.mark.parametrize(
    "byte",
    [pytest.param(b"0", id="endless-digits"), pytest.param(b"\0", id="dev-zero-like")],
)
def test_an_endless_line_costs_no_more_memory_than_the_cap(
    database: Settings, db: Connection, baseline_rss: int, byte: bytes
):
    size = 300 * MIB
    chunks = [*endless_line(byte, size), b"\n", good_line(1) + b"\n"]

    peak, stdout, _ = ingest_peak_rss(database, chunks)

    assert peak - baseline_rss < 4 * CAP, f"peak {peak / MIB:.0f} MiB for a {size // MIB} MiB line"
    assert stdout.endswith("-: 1 accepted, 0 duplicate, 1 rejected\n"), stdout
    (row,) = query(
        db, "select line_number, reason, length(raw_line) as kept from raw.quarantined_events"
    )
    assert row["line_number"] == 1
    assert row["kept"] == 1024, "only the line's first bytes are kept"
    assert f"line of {size} bytes is over the limit of {CAP} bytes" in row["reason"]


def test_many_lines_just_under_the_cap_cost_one_batch_not_the_file(
    database: Settings, db: Connection, baseline_rss: int
):
    # 48 MiB of valid events of 1 MiB each: one batch of 10,000 lines would hold them all.
    lines = [good_line(n, padding=CAP) + b"\n" for n in range(48)]

    peak, stdout, _ = ingest_peak_rss(database, lines)

    assert stdout.endswith("-: 48 accepted, 0 duplicate, 0 rejected\n"), stdout
    # One batch is 8 MiB; each line is held a few times over (bytes, text, dict, COPY row).
    assert peak - baseline_rss < 8 * (CAP + 8 * MIB), f"peak {peak / MIB:.0f} MiB"


def test_many_rejected_lines_cost_one_batch_not_the_file(
    database: Settings, db: Connection, baseline_rss: int
):
    # 128 MiB of lines that break the contract: each is quarantined whole, and reported
    # once its batch has landed, not kept until the file's end.
    lines = [good_line(n, padding=CAP, status="done") + b"\n" for n in range(128)]

    peak, stdout, stderr = ingest_peak_rss(database, lines)

    assert stdout.endswith("-: 0 accepted, 0 duplicate, 128 rejected\n"), stdout
    reported = [line for line in stderr.splitlines() if "status: 'done' is not one of" in line]
    assert [line.split(":")[1] for line in reported] == [f" line {n}" for n in range(1, 129)]
    quarantined = query(
        db,
        "select line_number, length(raw_line) as kept from raw.quarantined_events"
        " where starts_with(reason, 'status: ''done''') order by line_number",
    )
    assert [(row["line_number"], row["kept"]) for row in quarantined] == [
        (n, CAP) for n in range(1, 129)
    ]
    assert peak - baseline_rss < 8 * (CAP + 8 * MIB), f"peak {peak / MIB:.0f} MiB"


# --- The cap ---------------------------------------------------------------------------


def test_a_line_just_over_the_cap_is_quarantined_and_the_lines_beside_it_land(db: Connection):
    at_cap = good_line(2, padding=CAP)
    over = good_line(3, padding=CAP + 1)
    data = b"\n".join([good_line(1), at_cap, over, good_line(4)]) + b"\n"

    result = ingest_stream(db, io.BytesIO(data), source="limits.jsonl")

    assert (result.accepted, result.rejected) == (3, 1)
    (rejection,) = result.rejections
    assert str(rejection).startswith(
        f"line 3: line of {CAP + 1} bytes is over the limit of {CAP} bytes (LEDGER_MAX_LINE_BYTES)"
    )
    assert rejection.raw == over[:1024]
    stored = {row["event_id"] for row in query(db, "select event_id::text from raw.run_events")}
    assert stored == {str(uuid.UUID(int=n)) for n in (1, 2, 4)}


def test_the_cap_is_the_setting_and_does_not_count_the_line_ending(
    database: Settings, db: Connection
):
    line = good_line(1, padding=2048)
    env = {**os.environ, **database.as_env(), "LEDGER_MAX_LINE_BYTES": "2048"}
    data = line + b"\r\n" + good_line(2, padding=2049) + b"\n" + good_line(3, padding=2049)

    done = subprocess.run(
        [sys.executable, "-m", "loader", "ingest", "-"],
        input=data,
        env=env,
        capture_output=True,
        check=False,
    )

    assert done.stdout.decode().endswith("-: 1 accepted, 0 duplicate, 2 rejected\n")
    assert b"line 2: line of 2049 bytes is over the limit of 2048" in done.stderr
    assert b"line 3: line of 2049 bytes is over the limit of 2048" in done.stderr


# --- What the database refuses ---------------------------------------------------------


@pytest.fixture(scope="module")
def latin1_database(server: Settings) -> Iterator[Settings]:
    """A ledger in a LATIN1 database: a character outside LATIN1 passes every Python check.

    Every value the contract lets through, PostgreSQL stores in a UTF8 database: the
    encoding is the refusal left to test.
    """
    name = "test_line_limits_latin1"
    drop_database(server, name)
    with connect(dataclasses.replace(server, dbname="postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("create database {} encoding 'LATIN1' locale 'C' template template0").format(
                sql.Identifier(name)
            )
        )
    settings = dataclasses.replace(server, dbname=name)
    with connect(settings, autocommit=True) as conn:
        # `init` now refuses such a database; one made by an older loader still exists.
        conn.execute(read_sql("create_raw_schema"))
    yield settings
    drop_database(server, name)


@pytest.fixture
def latin1(latin1_database: Settings) -> Iterator[Connection]:
    with connect(latin1_database, autocommit=True) as conn:
        conn.execute("truncate raw.run_events, raw.stages, raw.runs, raw.quarantined_events")
        yield conn


@pytest.mark.parametrize("lines", [5, 150], ids=["small-batch", "copy-batch"])
def test_a_value_the_database_refuses_quarantines_only_its_line(latin1: Connection, lines: int):
    refused = {3, lines - 1}
    data = b"".join(
        good_line(n, error_message="caf\u00e9 \U0001f600" if n in refused else "caf\u00e9") + b"\n"
        for n in range(1, lines + 1)
    )
    # A line the contract rejects, whose reason the database encoding cannot hold either.
    data += b'{"\xf0\x9f\x98\x80": 1, "\xf0\x9f\x98\x80": 2}\n'

    result = ingest_stream(latin1, io.BytesIO(data), source="refused.jsonl")

    assert (result.accepted, result.rejected) == (lines - len(refused), len(refused) + 1)
    reasons = {item.line_number: item.reason for item in result.rejections}
    for number in refused:
        assert reasons[number].startswith("refused by the database: ")
    assert "duplicate key" in reasons[lines + 1]
    rows = query(latin1, "select line_number, reason, raw_line from raw.quarantined_events")
    assert {row["line_number"] for row in rows} == {*refused, lines + 1}
    original = data.split(b"\n")
    assert all(bytes(row["raw_line"]) == original[row["line_number"] - 1] for row in rows)
    stored = query(latin1, "select count(*) as n, min(error_message) as m from raw.run_events")
    assert stored == [{"n": lines - len(refused), "m": "caf\u00e9"}]
