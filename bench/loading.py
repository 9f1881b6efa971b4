"""Bulk ingest against a raw COPY of the same rows, and one API event against one INSERT."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from loader import Ledger
from loader.connection import connect
from loader.settings import Settings

STAGES = ("extract", "transform", "load", "publish")
START = datetime(2026, 1, 1, tzinfo=UTC)


def write_events_file(path: Path, events: int) -> int:
    """Write `events` contract events (runs of 14: run and 4 stages) as JSON lines."""
    written = 0
    with path.open("w", encoding="utf-8") as out:
        run = 0
        while written < events:
            run += 1
            for document in run_events(f"bulk-{run}", START + timedelta(minutes=run)):
                if written == events:
                    break
                out.write(json.dumps(document, separators=(",", ":")) + "\n")
                written += 1
    return written


def run_events(run_key: str, start: datetime) -> list[dict[str, object]]:
    """The 14 events of one completed run: the run, and 4 stages with a heartbeat each."""

    def event(status: str, minutes: int, **fields: object) -> dict[str, object]:
        at = (start + timedelta(minutes=minutes)).isoformat()
        return {"run_key": run_key, "status": status, "event_time": at, **fields}

    events = [event("running", 0, pipeline_name=f"bulk_{len(run_key) % 7}")]
    for position, stage in enumerate(STAGES):
        base = position * 10
        events += [
            event("running", base, stage_name=stage),
            event("running", base + 5, stage_name=stage, records_processed=500),
            event("completed", base + 9, stage_name=stage, records_processed=1000),
        ]
    events.append(event("completed", 45, records_processed=4000))
    return events


def ingest_throughput(settings: Settings, path: Path, events: int) -> tuple[float, float]:
    """Run `python -m loader ingest` on the file; return (events per second, peak RSS MB)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "loader", "ingest", str(path)],
        env={**os.environ, **settings.as_env()},
        stdout=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"ingest exited with {process.returncode}")
    return events / elapsed, usage.ru_maxrss / 1024


def copy_throughput(settings: Settings, events: int, work: Path) -> float:
    """COPY the same number of pre-formatted rows into an empty copy of raw.run_events.

    The rows wait in a file, not in this process's memory: the ingest process started
    after this one would otherwise count this process's pages in its peak RSS (Linux
    keeps `ru_maxrss` across the fork and exec that start it).
    """
    null = "\\N"
    rows_file = work / "copy_rows.tsv"
    with rows_file.open("wb") as out:
        for number in range(events):
            at = (START + timedelta(seconds=number)).isoformat()
            stage = number % 5 or null
            out.write(
                f"{uuid.uuid4()}\t{number // 14 + 1}\t{stage}\trunning\t{at}"
                f"\t{number}\t{null}\t1\t{null}\n".encode()
            )
    with connect(settings) as conn:
        conn.execute("create table raw.copy_baseline (like raw.run_events including all)")
        conn.commit()
        columns = (
            "event_id, pipeline_id, stage_id, status, event_time, records_processed,"
            " error_message, attempt, attributes"
        )
        started = time.perf_counter()
        with (
            rows_file.open("rb") as rows,
            conn.cursor().copy(f"copy raw.copy_baseline ({columns}) from stdin") as copy,
        ):
            for chunk in iter(lambda: rows.read(1 << 20), b""):
                copy.write(chunk)
        conn.commit()
        elapsed = time.perf_counter() - started
        [(copied,)] = conn.execute("select count(*) from raw.copy_baseline").fetchall()
    if copied != events:
        raise RuntimeError(f"the baseline COPY stored {copied} rows, not {events}")
    return events / elapsed


def event_latencies(settings: Settings, samples: int) -> tuple[list[float], list[float]]:
    """Time one API stage event and one plain INSERT + commit, alternately, `samples` times.

    Both on the API's own connection; the INSERT goes to a table shaped like the event
    table, so the two differ only by what the loader does on top.
    """
    ours: list[float] = []
    baseline: list[float] = []
    with Ledger(settings, source="bench") as ledger:
        run = ledger.start_run("latency", run_key="latency-1", stages=["load"])
        stage = run.stage("load")
        stage.started()
        conn = ledger.connection()
        conn.execute("create table raw.insert_baseline (like raw.run_events including all)")
        conn.commit()
        for number in range(samples):
            started = time.perf_counter()
            stage.heartbeat(records=number)
            ours.append(time.perf_counter() - started)
            started = time.perf_counter()
            conn.execute(
                "insert into raw.insert_baseline (event_id, pipeline_id, stage_id, status,"
                " event_time, records_processed) values (%s, %s, %s, %s, %s, %s)",
                [uuid.uuid4(), 1, 1, "running", datetime.now(UTC), number],
            )
            conn.commit()
            baseline.append(time.perf_counter() - started)
    return ours, baseline


def percentile(values: list[float], fraction: float) -> float:
    """The value below which `fraction` of the samples fall (inclusive method)."""
    return statistics.quantiles(values, n=100, method="inclusive")[round(fraction * 100) - 1]
