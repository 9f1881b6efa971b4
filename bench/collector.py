"""`ledger serve` under 32 keep-alive connections against the API's per-event calls.

The collector runs as `python -m loader serve` in a process of its own; the load comes from
this process, asynchronously (aiohttp), so that the clients do not eat the server's cores.
Each request posts one native event and waits for its answer, which comes once the event
is committed. The baseline records the same number of events with `Ledger.emit`, one call
per event, in this process. Both on fresh databases of the same server, in the same run.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

from loader import Ledger
from loader.connection import connect
from loader.settings import Settings

CONNECTIONS = 32
START = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class CollectorRun:
    """What the load generator saw."""

    events_per_second: float
    latencies: list[float]
    stored: int
    distinct: int
    failed: int


def event(number: int) -> dict[str, object]:
    """One stage heartbeat of one of 100 runs, with its own event_id."""
    run = number % 100
    return {
        "event_id": str(uuid.uuid4()),
        "run_key": f"collector-{run}",
        "pipeline_name": f"collector_{run % 7}",
        "stage_name": "load",
        "status": "running",
        "event_time": (START + timedelta(seconds=number)).isoformat(),
        "records_processed": number,
    }


def collector_throughput(settings: Settings, events: int, work: Path) -> CollectorRun:
    """Post `events` events over CONNECTIONS keep-alive connections, one per request."""
    log = work / "collector.log"
    with (
        log.open("w") as stderr,
        subprocess.Popen(
            [sys.executable, "-m", "loader", "serve", "--port", "0"],
            env={
                **os.environ,
                **settings.as_env(),
                "LEDGER_SPOOL_DIR": str(work / "collector-spool"),
            },
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        ) as server,
    ):
        try:
            assert server.stdout is not None
            line = server.stdout.readline()
            if not line.startswith("ledger serve: listening on "):
                raise RuntimeError(f"ledger serve did not start: {log.read_text()}")
            url = line.split()[-1] + "/api/v1/events"
            elapsed, latencies, failed = asyncio.run(_post_all(url, events))
        finally:
            server.terminate()
            server.wait(timeout=60)
    with connect(settings) as conn:
        [(stored, distinct)] = conn.execute(
            "select count(*), count(distinct event_id) from raw.run_events"
        ).fetchall()
    return CollectorRun(events / elapsed, latencies, stored, distinct, failed)


async def _post_all(url: str, events: int) -> tuple[float, list[float], int]:
    documents = [event(number) for number in range(events)]
    latencies: list[float] = []
    failed = 0
    connector = aiohttp.TCPConnector(limit=CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector) as session:
        # Warm up each connection (and the server's connection to the database).
        await asyncio.gather(
            *(session.get(url.replace("/api/v1/events", "/healthz")) for _ in range(CONNECTIONS))
        )
        cursor = iter(documents)

        async def client() -> None:
            nonlocal failed
            for document in cursor:
                started = time.perf_counter()
                async with session.post(url, json=document) as answer:
                    await answer.read()
                    if answer.status != 200:
                        failed += 1
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(CONNECTIONS)))
        elapsed = time.perf_counter() - started
    return elapsed, latencies, failed


def api_throughput(settings: Settings, events: int) -> float:
    """Record the same events with one `Ledger.emit` call each, in this process."""
    documents = [event(number) for number in range(events)]
    with Ledger(settings, source="bench") as ledger:
        ledger.emit(documents[0])  # connect and register the first run outside the timing
        started = time.perf_counter()
        for document in documents[1:]:
            ledger.emit(document)
        elapsed = time.perf_counter() - started
    return (events - 1) / elapsed
