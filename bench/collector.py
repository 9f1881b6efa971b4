"""`ledger serve` under 32 keep-alive connections against the API's per-event calls.

The collector runs as `python -m loader serve` in a process of its own; the load comes from
this process, on one uvloop loop (the server's), over plain keep-alive HTTP/1.1
connections with the requests made beforehand: the load generator shares the machine's
cores with the server and PostgreSQL, so it must cost them little (aiohttp's client took
86 µs of CPU a request here, this one 44 on asyncio's own loop and 26 on uvloop). Each
request posts one native event and waits for its answer, which comes once the event is
committed. The baseline records the same number of events with `Ledger.emit`, one call per
event, in this process. Both on fresh databases of the same server, in the same run.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import uvloop

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
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                elapsed, latencies, failed = runner.run(_post_all(url, events))
        finally:
            server.terminate()
            server.wait(timeout=60)
    with connect(settings) as conn:
        [(stored, distinct)] = conn.execute(
            "select count(*), count(distinct event_id) from raw.run_events"
        ).fetchall()
    return CollectorRun(events / elapsed, latencies, stored, distinct, failed)


_CONTENT_LENGTH = re.compile(rb"^content-length:[ \t]*(\d+)", re.IGNORECASE | re.MULTILINE)


async def _post_all(url: str, events: int) -> tuple[float, list[float], int]:
    host, port, path = _split(url)
    requests = [_post_request(host, port, path, event(number)) for number in range(events)]
    latencies: list[float] = []
    failed = 0
    connections = [await asyncio.open_connection(host, port) for _ in range(CONNECTIONS)]
    # Warm up each connection (and the server's connection to the database).
    await asyncio.gather(
        *(
            _exchange(reader, writer, f"GET /healthz HTTP/1.1\r\nhost: {host}\r\n\r\n".encode())
            for reader, writer in connections
        )
    )
    cursor = iter(requests)

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal failed
        for request in cursor:
            started = time.perf_counter()
            if await _exchange(reader, writer, request) != 200:
                failed += 1
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(client(reader, writer) for reader, writer in connections))
    elapsed = time.perf_counter() - started
    for _, writer in connections:
        writer.close()
        await writer.wait_closed()
    return elapsed, latencies, failed


def _split(url: str) -> tuple[str, int, str]:
    """http://host:port/path as its parts (the collector's own announced address)."""
    address, _, path = url.removeprefix("http://").partition("/")
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port), "/" + path


def _post_request(host: str, port: int, path: str, document: dict[str, object]) -> bytes:
    body = json.dumps(document).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> int:
    """Send one request and read its whole answer (the collector always gives a length);
    return its status."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = _CONTENT_LENGTH.search(head)
    if length is None:
        raise RuntimeError(f"an answer without content-length: {head[:200]!r}")
    await reader.readexactly(int(length[1]))
    return int(head.split(b" ", 2)[1])


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
