"""`ledger serve`: the HTTP face of the ledger, for OpenLineage producers and native events.

A plain ASGI application on uvicorn (httptools, uvloop; each answer in one send:
`loader.serve_protocol`). The web layer reads and bounds bodies (size, gzip, time), checks
the bearer token, and hands each request to the `Collector` (`loader.collector`), whose
writer thread stores concurrent requests in one transaction; a response leaves only once
its events are committed or fsync'd in the spool. Safe by default: it listens on
127.0.0.1, and refuses any other address without a token.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import os
import socket
import time
import zlib
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any, NamedTuple

import orjson
import uvicorn

from loader.collector import Collector, Outcome, RequestError, Work, lineage_request, native_request
from loader.errors import ConfigurationError
from loader.serve_protocol import HttpProtocol
from loader.settings import Settings

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5000
"""Marquez's port: `OPENLINEAGE_URL=http://localhost:5000` as in OpenLineage's own guides."""
TOKEN_VARIABLE = "LEDGER_API_TOKEN"
READ_TIMEOUT = 10.0
"""Seconds a client has to send its whole body; a slower one is answered 408."""
HEALTH_TIMEOUT = 5.0
_PARSE_IN_THREAD_BYTES = 64 * 1024
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
PATHS = ("/api/v1/lineage", "/api/v1/events", "/healthz", "/metrics")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen beyond this machine without a token: anyone could write events."""
    if token or host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise ConfigurationError(
        f"refusing to listen on {host} without {TOKEN_VARIABLE}: anyone who reaches it could"
        f" write events; set {TOKEN_VARIABLE} (clients send it as `Authorization: Bearer`),"
        " or listen on 127.0.0.1"
    )


class Metrics:
    """Request counts and latencies, rendered with the collector's totals in Prometheus text.

    Updated on the event loop only: no lock.
    """

    def __init__(self) -> None:
        self.requests: dict[tuple[str, int], int] = {}
        self.buckets: dict[str, list[int]] = {}
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def observe(self, path: str, status: int, seconds: float) -> None:
        path = path if path in PATHS else "other"
        self.requests[path, status] = self.requests.get((path, status), 0) + 1
        buckets = self.buckets.setdefault(path, [0] * len(LATENCY_BUCKETS))
        for index, bound in enumerate(LATENCY_BUCKETS):
            if seconds <= bound:
                buckets[index] += 1
        self.sums[path] = self.sums.get(path, 0.0) + seconds
        self.counts[path] = self.counts.get(path, 0) + 1

    def render(self, collector: Collector) -> str:
        totals = collector.totals.snapshot()
        lines: list[str] = []

        def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")
            lines.extend(f"{name}{labels} {value:g}" for labels, value in samples)

        for name, help_text in (
            ("accepted", "Events newly stored in raw.run_events."),
            ("duplicates", "Events already stored (same event_id), counted once."),
            ("rejected", "Events quarantined with their reason."),
            ("parked", "Events of a run not named yet, parked in raw.parked_events."),
            ("spooled", "Events fsync'd in the spool while the database was down."),
            ("other_events", "DatasetEvents and JobEvents received (retries included)."),
            ("lost", "Events answered 503: neither stored nor spooled."),
        ):
            metric(
                f"ledger_collector_events_{name}_total", "counter", help_text, [("", totals[name])]
            )
        metric(
            "ledger_collector_group_commits_total",
            "counter",
            "Transactions of the writer thread (requests share them).",
            [("", totals["groups"])],
        )
        metric(
            "ledger_collector_database_up",
            "gauge",
            "1 when the last write or check reached the database.",
            [("", 0 if collector.database_up is False else 1)],
        )
        metric(
            "ledger_collector_spool_waiting",
            "gauge",
            "1 while spooled events wait for the database.",
            [("", 1 if collector.spool_waiting else 0)],
        )
        metric(
            "ledger_collector_requests_total",
            "counter",
            "HTTP requests by path and status.",
            [
                (f'{{path="{path}",status="{status}"}}', count)
                for (path, status), count in sorted(self.requests.items())
            ],
        )
        name = "ledger_collector_request_duration_seconds"
        lines.append(f"# HELP {name} Time from request to response, durability included.")
        lines.append(f"# TYPE {name} histogram")
        for path in sorted(self.buckets):
            for bound, count in zip(LATENCY_BUCKETS, self.buckets[path], strict=True):
                lines.append(f'{name}_bucket{{path="{path}",le="{bound:g}"}} {count}')
            lines.append(f'{name}_bucket{{path="{path}",le="+Inf"}} {self.counts[path]}')
            lines.append(f'{name}_sum{{path="{path}"}} {self.sums[path]:.6f}')
            lines.append(f'{name}_count{{path="{path}"}} {self.counts[path]}')
        return "\n".join(lines) + "\n"


class Reply(NamedTuple):
    """An answer: status, body, and its headers beyond content-type and content-length."""

    status: int
    body: bytes
    content_type: bytes = b"application/json"
    headers: tuple[tuple[bytes, bytes], ...] = ()


Handler = Callable[[Scope, Receive], Awaitable[Reply]]


def header(scope: Scope, name: bytes) -> str:
    """A request header's value (the last one given), or "" (ASGI names are lower case)."""
    value = b""
    for key, given in scope["headers"]:
        if key == name:
            value = given
    return value.decode("latin-1")


async def read_body(
    scope: Scope, receive: Receive, limit: int, timeout: float = READ_TIMEOUT
) -> bytes:
    """Read a body of at most `limit` bytes (after gzip too) within `timeout` seconds.

    Raise RequestError: 413 over the limit (before reading it all), 415 for an encoding
    other than gzip, 400 for broken gzip, 408 for a client too slow.
    """
    encoding = header(scope, b"content-encoding").strip().lower() or "identity"
    if encoding not in {"identity", "gzip", "x-gzip"}:
        raise RequestError(415, f"Content-Encoding {encoding[:40]!r}: only gzip is accepted")
    over = (
        f"the body is over the limit of {limit} bytes (LEDGER_MAX_LINE_BYTES);"
        " send fewer events per request"
    )
    declared = header(scope, b"content-length")
    if declared.isdigit() and int(declared) > limit:
        raise RequestError(413, over)
    inflate = zlib.decompressobj(wbits=31) if encoding != "identity" else None
    parts: list[bytes] = []
    size = received = 0
    more = True
    try:
        async with asyncio.timeout(timeout):
            while more:
                message = await receive()
                if message["type"] != "http.request":
                    raise RequestError(400, "the client went away before sending the whole body")
                chunk = message.get("body", b"")
                more = message.get("more_body", False)
                received += len(chunk)
                if received > limit:
                    raise RequestError(413, over)
                part = chunk
                if inflate is not None:
                    part = inflate.decompress(chunk, limit + 1 - size)
                    if inflate.unconsumed_tail:
                        raise RequestError(413, over + " (once decompressed)")
                size += len(part)
                if size > limit:
                    raise RequestError(413, over + " (once decompressed)")
                parts.append(part)
    except TimeoutError:
        raise RequestError(408, f"the body did not arrive within {timeout:g} s") from None
    except zlib.error as error:
        raise RequestError(400, f"the body is not valid gzip ({error})") from None
    if inflate is not None and not inflate.eof:
        raise RequestError(400, "the body is not valid gzip (truncated)")
    return parts[0] if len(parts) == 1 else b"".join(parts)


def create_app(
    collector: Collector,
    *,
    token: str | None,
    max_body_bytes: int,
    spool_dir: Path,
    read_timeout: float = READ_TIMEOUT,
) -> ASGIApp:
    """Return the collector's ASGI application.

    Plain ASGI, no framework: four routes, bodies read as streams, JSON answers. A
    framework's routing, request objects and middleware cost the event loop 20-30 µs a
    request, a fifth of all the loop's work in `make bench` (docs/collector.md).
    """
    metrics = Metrics()
    expected = f"Bearer {token}".encode() if token else None

    def authorized(scope: Scope) -> bool:
        if expected is None:
            return True
        given = header(scope, b"authorization").encode("latin-1")
        return hmac.compare_digest(given, expected)

    async def post(scope: Scope, receive: Receive, parse: Callable[[bytes], Work]) -> Reply:
        if not authorized(scope):
            return _answer(
                Outcome(401, reasons=[f"a bearer token is required ({TOKEN_VARIABLE})"]),
                headers=((b"www-authenticate", b"Bearer"),),
            )
        try:
            body = await read_body(scope, receive, max_body_bytes, read_timeout)
            if len(body) > _PARSE_IN_THREAD_BYTES:
                work = await asyncio.to_thread(parse, body)
            else:
                work = parse(body)
        except RequestError as error:
            return _answer(Outcome(error.status, reasons=[error.reason]))
        return _answer(await collector.submit(work))

    async def lineage(scope: Scope, receive: Receive) -> Reply:
        return await post(scope, receive, lineage_request)

    async def events(scope: Scope, receive: Receive) -> Reply:
        return await post(scope, receive, native_request)

    async def healthz(scope: Scope, receive: Receive) -> Reply:
        try:
            outcome = await asyncio.wait_for(collector.check(), HEALTH_TIMEOUT)
        except TimeoutError:
            return _json(503, {"database": "busy", "healthy": False})
        if outcome.status == 200:
            return _json(200, {"database": "up", "healthy": True})
        spooling = _writable(spool_dir)
        return _json(
            200 if spooling else 503,
            {"database": "down", "spooling": spooling, "healthy": spooling},
        )

    async def prometheus(scope: Scope, receive: Receive) -> Reply:
        return Reply(
            200,
            metrics.render(collector).encode(),
            b"text/plain; version=0.0.4; charset=utf-8",
        )

    routes: dict[str, tuple[str, Handler]] = {
        "/api/v1/lineage": ("POST", lineage),
        "/api/v1/events": ("POST", events),
        "/healthz": ("GET", healthz),
        "/metrics": ("GET", prometheus),
    }

    async def answer(scope: Scope, receive: Receive) -> Reply:
        route = routes.get(scope["path"])
        method = scope["method"]
        if route is None:
            return Reply(404, b"Not Found", b"text/plain; charset=utf-8")
        if method != route[0] and not (method == "HEAD" and route[0] == "GET"):
            allow = ((b"allow", route[0].encode()),)
            return Reply(405, b"Method Not Allowed", b"text/plain; charset=utf-8", allow)
        try:
            return await route[1](scope, receive)
        except Exception:
            logger.exception("%s %s failed", method, scope["path"])
            return Reply(500, b"Internal Server Error", b"text/plain; charset=utf-8")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan is off; nothing else is served
            return
        started = time.perf_counter()
        path = scope["path"]
        status = 500  # what a request cancelled before its answer counts as, in /metrics
        try:
            reply = await answer(scope, receive)
            status = reply.status
            await send(
                {
                    "type": "http.response.start",
                    "status": reply.status,
                    "headers": [
                        (b"content-type", reply.content_type),
                        (b"content-length", str(len(reply.body)).encode()),
                        *reply.headers,
                    ],
                }
            )
            await send({"type": "http.response.body", "body": reply.body})
        finally:
            metrics.observe(path, status, time.perf_counter() - started)

    return app


def _answer(outcome: Outcome, headers: tuple[tuple[bytes, bytes], ...] = ()) -> Reply:
    return Reply(outcome.status, orjson.dumps(outcome.as_json()), headers=headers)


def _json(status: int, value: dict[str, Any]) -> Reply:
    return Reply(status, orjson.dumps(value))


def _writable(folder: Path) -> bool:
    """Whether the spool could be written: the folder, or the nearest one above it."""
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            return os.access(candidate, os.W_OK | os.X_OK)
    return False


def listen(host: str, port: int) -> socket.socket:
    """Open the listening socket (port 0: any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as error:
        sock.close()
        raise ConfigurationError(f"cannot listen on {host}:{port}: {error}") from error
    sock.set_inheritable(True)
    return sock


def serve(
    settings: Settings,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    token: str | None = None,
    read_timeout: float = READ_TIMEOUT,
    announce: Callable[[str], None] = print,
) -> None:
    """Listen until SIGINT or SIGTERM, then store what is queued and stop.

    Raise ConfigurationError when `host` is not a loopback address and there is no token.
    """
    check_bind(host, token)
    sock = listen(host, port)
    collector = Collector(settings)
    collector.start()
    app = create_app(
        collector,
        token=token,
        max_body_bytes=settings.max_line_bytes,
        spool_dir=settings.spool_dir,
        read_timeout=read_timeout,
    )
    config = uvicorn.Config(
        app,
        loop="uvloop",
        http=HttpProtocol,
        lifespan="off",
        log_level="warning",
        access_log=False,
        server_header=False,
        timeout_keep_alive=30,
        timeout_graceful_shutdown=30,
    )
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    announce(f"ledger serve: listening on http://{shown}:{bound_port}")
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        collector.stop()
        sock.close()
