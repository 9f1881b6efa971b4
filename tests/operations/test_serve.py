"""`ledger serve` over loopback: real clients, bad bodies, the token, 32 clients, an outage.

Each test starts `python -m loader serve --port 0` as a subprocess on a database of its
own, on this module's own embedded server (the outage test stops and starts it).
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import (
    DatasetEvent,
    Job,
    Run,
    RunEvent,
    RunState,
    StaticDataset,
)
from openlineage.client.transport.http import ApiKeyTokenProvider, HttpConfig, HttpTransport

from loader import embedded
from loader.connection import connect
from loader.settings import Settings
from tests.support.own_server import fresh_database
from tests.support.serve_process import ledger_serve

TOKEN = "s3cret-token"
LIMIT = 64 * 1024  # LEDGER_MAX_LINE_BYTES for these tests


@contextmanager
def collector(settings: Settings, *args: str, **env: str) -> Iterator[str]:
    """Run `ledger serve` on a free port; yield its base URL."""
    log = settings.spool_dir.parent / "serve.log"
    with ledger_serve(settings, log, *args, max_line_bytes=LIMIT, **env) as url:
        yield url


def database(server_dir: Path, tmp_path: Path, name: str) -> Settings:
    return fresh_database(server_dir, name, tmp_path / "spool")


def count(settings: Settings, query: str) -> int:
    with connect(settings) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return int(row[0])


def native(run_key: str, status: str = "running", minute: int = 0, **fields: Any) -> dict[str, Any]:
    return {
        "run_key": run_key,
        "status": status,
        "event_time": f"2026-03-01T02:{minute:02d}:00Z",
        **fields,
    }


def run_event(state: RunState, run_id: str, job: str = "nightly") -> RunEvent:
    return RunEvent(
        eventType=state,
        eventTime="2026-03-01T02:00:00Z" if state == RunState.START else "2026-03-01T02:05:00Z",
        run=Run(runId=run_id),
        job=Job(namespace="tests", name=job),
        producer="https://example.com/tests",
    )


@pytest.mark.parametrize("with_token", [False, True], ids=["open", "api_key"])
def test_openlineage_client_http_transport(server_dir, tmp_path, with_token):
    settings = database(server_dir, tmp_path, f"serve_openlineage_{int(with_token)}")
    env = {"LEDGER_API_TOKEN": TOKEN} if with_token else {}
    with collector(settings, **env) as url:
        config = HttpConfig(url=url, endpoint="api/v1/lineage", compression=None)
        if with_token:
            config.auth = ApiKeyTokenProvider({"apiKey": TOKEN})
        client = OpenLineageClient(transport=HttpTransport(config))
        run_id = str(uuid.uuid4())
        client.emit(run_event(RunState.START, run_id))
        client.emit(run_event(RunState.COMPLETE, run_id))
        client.emit(run_event(RunState.COMPLETE, run_id))  # a retry: counted once
        dataset = DatasetEvent(
            eventTime="2026-03-01T02:06:00Z",
            producer="https://example.com/tests",
            dataset=StaticDataset(namespace="tests", name="sales"),
        )
        client.emit(dataset)
        client.emit(dataset)
        gzipped = HttpConfig(url=url, compression="gzip", auth=config.auth)  # type: ignore[arg-type]
        OpenLineageClient(transport=HttpTransport(gzipped)).emit(
            run_event(RunState.START, str(uuid.uuid4()), job="gzipped")
        )
        if with_token:
            anonymous = OpenLineageClient(transport=HttpTransport(HttpConfig(url=url)))
            with pytest.raises(requests.HTTPError, match="401"):
                anonymous.emit(run_event(RunState.START, str(uuid.uuid4())))
    assert count(settings, "select count(*) from raw.run_events") == 3
    assert count(settings, "select count(*) from raw.runs") == 2
    assert count(settings, "select count(*) from raw.openlineage_other_events") == 1
    assert count(settings, "select count(*) from raw.quarantined_events") == 0


def test_native_posts_answer_with_counts_and_reasons(server_dir, tmp_path):
    settings = database(server_dir, tmp_path, "serve_native")
    with collector(settings) as url, requests.Session() as http:
        events = f"{url}/api/v1/events"
        answer = http.post(events, json=native("r1", pipeline_name="nightly"))
        assert (answer.status_code, answer.json()) == (
            200,
            {"received": 1, "stored": 1, "rejected": 0, "spooled": 0},
        )
        identified = native("r1", "completed", 9, event_id=str(uuid.uuid4()))
        assert http.post(events, json=[native("r1", minute=1, stage_name="a"), identified]).ok
        assert http.post(events, json=identified).status_code == 200  # a retry, once
        lines = "\n".join(
            json.dumps(event)
            for event in (native("r1", minute=2, stage_name="b"), native("r1", "done"))
        )
        partial = http.post(events, data=lines + "\n{oops\n")
        assert partial.status_code == 200
        assert partial.json()["stored"] == 1
        assert partial.json()["reasons"] == [
            "event 2: status: 'done' is not one of pending, running, completed, failed",
            "event 3: not valid JSON (Expecting property name enclosed in double quotes"
            " at line 1 column 2)",
        ]
        bad = http.post(events, json=[{"run_key": 7, "status": "running"}, 42])
        assert bad.status_code == 400
        assert bad.json()["rejected"] == 2
        assert http.get(f"{url}/healthz").json() == {"database": "up", "healthy": True}
        metrics = http.get(f"{url}/metrics").text
    assert "ledger_collector_events_accepted_total 4" in metrics
    assert "ledger_collector_events_duplicates_total 1" in metrics
    assert "ledger_collector_events_rejected_total 4" in metrics
    assert 'ledger_collector_request_duration_seconds_count{path="/api/v1/events"} 5' in metrics
    assert count(settings, "select count(*) from raw.run_events") == 4
    assert count(settings, "select count(*) from raw.quarantined_events") == 4
    # The three events posted without an event_id got one on arrival: a UUIDv7.
    versions = "select count(*) from raw.run_events where substr(event_id::text, 15, 1) = '7'"
    assert count(settings, versions) == 3


def _gzip_bomb() -> bytes:
    return gzip.compress(b" " * (20 * 1024 * 1024), compresslevel=9)


BAD_BODIES: list[tuple[str, dict[str, str], Callable[[], bytes], int, str]] = [
    ("not JSON", {}, lambda: b"<xml/>", 400, "not valid JSON"),
    ("not UTF-8", {}, lambda: b'{"a": "\xff"}', 400, "not valid UTF-8"),
    ("empty", {}, lambda: b"", 400, "no event"),
    ("an array", {}, lambda: b"[1, 2]", 400, "expected an OpenLineage event"),
    ("wrong types", {}, lambda: b'{"eventType": "START", "eventTime": 5}', 400, "eventTime"),
    ("no run, no dataset", {}, lambda: b'{"producer": "x"}', 400, "native events go to"),
    ("duplicate keys", {}, lambda: b'{"a": 1, "a": 2}', 400, "duplicate key"),
    ("deep nesting", {}, lambda: b"[" * 50_000, 400, "nested too deeply"),
    ("10 MB", {}, lambda: b"x" * (10 * 1024 * 1024), 413, "over the limit"),
    ("a gzip bomb", {"Content-Encoding": "gzip"}, _gzip_bomb, 413, "once decompressed"),
    ("broken gzip", {"Content-Encoding": "gzip"}, lambda: b"\x1f\x8bnope", 400, "gzip"),
    ("brotli", {"Content-Encoding": "br"}, lambda: b"{}", 415, "only gzip"),
]


def test_bad_bodies_are_answered_4xx_and_the_server_keeps_serving(server_dir, tmp_path):
    settings = database(server_dir, tmp_path, "serve_bad_bodies")
    with collector(settings, "--read-timeout", "1") as url, requests.Session() as http:
        lineage = f"{url}/api/v1/lineage"
        for what, headers, body, status, reason in BAD_BODIES:
            answer = http.post(lineage, data=body(), headers=headers)
            assert answer.status_code == status, what
            assert reason in " ".join(answer.json()["reasons"]), what
            assert http.get(f"{url}/healthz").status_code == 200, what
        # A slow client: headers, then a body that never completes.
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as slow:
            slow.sendall(b"POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
            started = time.monotonic()
            slow.settimeout(10)
            reply = slow.recv(4096)
        assert reply.startswith(b"HTTP/1.1 408"), reply
        assert time.monotonic() - started < 5
        assert http.get(f"{url}/healthz").status_code == 200
        assert http.get(f"{url}/nowhere").status_code == 404
    assert count(settings, "select count(*) from raw.run_events") == 0


def test_token_and_bind_refusal(server_dir, tmp_path):
    settings = database(server_dir, tmp_path, "serve_token")
    with collector(settings, LEDGER_API_TOKEN=TOKEN) as url:
        events = f"{url}/api/v1/events"
        body = native("t1", pipeline_name="p")
        assert requests.post(events, json=body).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert requests.post(events, json=body, headers=wrong).status_code == 401
        right = {"Authorization": f"Bearer {TOKEN}"}
        assert requests.post(events, json=body, headers=right).status_code == 200
    refused = subprocess.run(
        [sys.executable, "-m", "loader", "serve", "--host", "0.0.0.0", "--port", "0"],
        env={k: v for k, v in os.environ.items() if k != "LEDGER_API_TOKEN"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 1
    assert "refusing to listen on 0.0.0.0 without LEDGER_API_TOKEN" in refused.stderr


def test_32_clients_at_once_store_every_event_exactly_once(server_dir, tmp_path):
    settings = database(server_dir, tmp_path, "serve_concurrency")
    clients, per_client = 32, 40
    sent: list[list[str]] = [[] for _ in range(clients)]
    failures: list[str] = []
    with collector(settings) as url:
        start = threading.Barrier(clients)

        def client(number: int) -> None:
            with requests.Session() as http:
                start.wait()
                for index in range(per_client):
                    event_id = str(uuid.uuid4())
                    event = native(
                        f"c{number}", "running", index % 60, event_id=event_id,
                        pipeline_name="load", stage_name=f"s{index}",
                    )  # fmt: skip
                    answer = http.post(f"{url}/api/v1/events", json=event)
                    if answer.status_code != 200:
                        failures.append(answer.text)
                    sent[number].append(event_id)

        threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        metrics = requests.get(f"{url}/metrics").text
    assert failures == []
    with connect(settings) as conn:
        stored = [str(row[0]) for row in conn.execute("select event_id from raw.run_events")]
    assert sorted(stored) == sorted(event_id for ids in sent for event_id in ids)
    [groups] = [
        int(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("ledger_collector_group_commits_total ")
    ]
    assert groups < clients * per_client, "concurrent requests share transactions"


def test_database_outage_is_answered_2xx_spooled_and_delivered_unasked(server_dir, tmp_path):
    settings = database(server_dir, tmp_path, "serve_outage")
    run_id = str(uuid.uuid4())
    with collector(settings) as url, requests.Session() as http:
        events, lineage = f"{url}/api/v1/events", f"{url}/api/v1/lineage"
        assert http.post(events, json=native("o1", pipeline_name="outage")).status_code == 200
        embedded.stop(server_dir)
        try:
            down = [
                http.post(events, json=[native("o1", minute=1, stage_name="a")]),
                http.post(events, json=native("o1", "completed", 2, stage_name="a")),
                http.post(lineage, data=json.dumps(_run_event_document(run_id, "START"))),
                http.post(
                    lineage,
                    data=json.dumps(
                        {
                            "eventTime": "2026-03-01T02:03:00Z",
                            "producer": "tests",
                            "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json",
                            "job": {"namespace": "tests", "name": "publish"},
                        }
                    ),
                ),
            ]
            assert [answer.status_code for answer in down] == [202] * 4
            assert all(answer.json()["spooled"] == 1 for answer in down)
            health = http.get(f"{url}/healthz").json()
            assert health == {"database": "down", "spooling": True, "healthy": True}
            spooled = list((tmp_path / "spool").rglob("*.jsonl"))
            assert spooled, "the events wait in the collector's spool"
        finally:
            embedded.start(server_dir)
        # No request from here on: the collector delivers by itself.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if count(settings, "select count(*) from raw.run_events") == 4 and count(
                    settings, "select count(*) from raw.openlineage_other_events"
                ):
                    break
            except psycopg.OperationalError:
                pass
            time.sleep(0.25)
        time.sleep(1.5)  # a second delivery pass must not double anything
        metrics = http.get(f"{url}/metrics").text
    assert count(settings, "select count(*) from raw.run_events") == 4
    assert count(settings, "select count(distinct event_id) from raw.run_events") == 4
    assert count(settings, "select count(*) from raw.openlineage_other_events") == 1
    assert count(settings, "select count(*) from raw.quarantined_events") == 0
    assert list((tmp_path / "spool").rglob("*.jsonl")) == []
    assert "ledger_collector_spool_waiting 0" in metrics
    assert "ledger_collector_events_spooled_total 4" in metrics


def _run_event_document(run_id: str, event_type: str) -> dict[str, Any]:
    return {
        "eventTime": "2026-03-01T02:00:00Z",
        "eventType": event_type,
        "producer": "tests",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": run_id},
        "job": {"namespace": "tests", "name": "outage_lineage"},
    }
