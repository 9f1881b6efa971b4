"""Delivery: how a Ledger's events reach the database, and what happens when they cannot.

One connection per Delivery, opened lazily and reopened when it breaks; the raw schema is
created on first use. When the database is unreachable or fails mid-call, events go to
this process's durable spool (one warning per outage) and the next successful write
delivers the spool first, then the spool files of other processes that nobody holds. With
`strict` settings the TransientError propagates instead.

A Delivery is safe to share between threads: one call at a time holds it, and a call that
fails leaves no transaction open. After a failed connect, calls spool at once until a
backoff delay has passed (shared by every Delivery of this process to the same database),
so an outage costs a job one connect timeout, not one per call.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import random
import tempfile
import threading
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, BinaryIO

import psycopg
from psycopg.pq import TransactionStatus

from loader import connection
from loader.batch import Candidate, LoadResult, Rejection
from loader.connection import Connection, database_errors
from loader.errors import LedgerError, TransientError
from loader.ingest import ingest_stream
from loader.schema import create_raw_schema, raw_schema_exists
from loader.settings import Settings
from loader.spool import Spool, database_spool_files, deliver_file, spool_files
from loader.writer import write_batch

logger = logging.getLogger(__name__)

_FAILED = "the ledger's database failed"

FIRST_RETRY_DELAY = 1.0
"""Seconds a Delivery spools at once after a failed connect; doubled on each failure..."""
MAX_RETRY_DELAY = 60.0
"""...up to this; each delay is shortened at random by up to half (jitter)."""
BUSY_RETRY_SECONDS = 3.0
"""How long a connect refused with "too many clients" (SQLSTATE 53300) is retried."""
_BUSY_FIRST_DELAY = 0.05
_BUSY_MAX_DELAY = 0.8
OTHERS_SECONDS = 1.0
"""After a successful write, how long a call may go on delivering other processes' files."""

# A spooled event that broke the contract, kept only to reach the quarantine: a record
# that no spooled event can look like (an event's first key is its event_time).
_QUARANTINE_KEY = "quarantine"
_QUARANTINE_PREFIX = b'{"' + _QUARANTINE_KEY.encode() + b'": '
_CHUNK = 64 * 1024
_COPY_IN_MEMORY = 8 * 1024 * 1024


class Backoff:
    """When to try connecting again after failed connects: exponential, jittered, monotonic."""

    def __init__(self, first: float = FIRST_RETRY_DELAY, cap: float = MAX_RETRY_DELAY) -> None:
        self.first = first
        self.cap = cap
        self.failures = 0
        self._next_attempt = 0.0
        self._probing = False
        self._lock = threading.Lock()

    def remaining(self) -> float:
        """Return the seconds left before the next connect should be tried (0: try now)."""
        return max(0.0, self._next_attempt - time.monotonic())

    def failed(self) -> None:
        """Count a failed connect and push the next attempt back."""
        with self._lock:
            self.failures += 1
            delay = min(self.cap, self.first * 2.0 ** min(self.failures - 1, 32))
            self._next_attempt = time.monotonic() + random.uniform(delay / 2, delay)

    def probe(self, settings: Settings) -> None:
        """Try a connect on a thread of its own, once the wait is over; one at a time.

        During an outage a caller never waits for a connect again: it spools, and the
        probe's answer decides whether the next call connects. So an outage costs a
        process one connect timeout, however long it lasts.
        """
        with self._lock:
            if self._probing or self.remaining() > 0:
                return
            self._probing = True
        threading.Thread(
            target=self._probe, args=(settings,), name="ledger-probe", daemon=True
        ).start()

    def _probe(self, settings: Settings) -> None:
        try:
            connection.open_connection(connection.resolve(settings), autocommit=True).close()
        except Exception:  # whatever failed, the next real call reports it
            logger.debug("the probe's connect failed", exc_info=True)
            self.failed()
        else:
            self.succeeded()
        finally:
            with self._lock:
                self._probing = False

    def adopt(self, failures: int, remaining: float) -> None:
        """Take on another process's backoff (its failures, its seconds left), if longer."""
        with self._lock:
            self.failures = max(self.failures, failures)
            self._next_attempt = max(self._next_attempt, time.monotonic() + remaining)

    def succeeded(self) -> None:
        """Forget the failures: the database answered."""
        with self._lock:
            self.failures = 0
            self._next_attempt = 0.0


_backoffs: dict[tuple[object, ...], Backoff] = {}
_backoffs_lock = threading.Lock()


def backoff_for(settings: Settings) -> Backoff:
    """Return this process's backoff for the database `settings` name."""
    key: tuple[object, ...] = (settings.host, settings.port, settings.dbname, settings.user)
    if settings.is_embedded:
        key = (*key, settings.embedded_dir)
    with _backoffs_lock:
        return _backoffs.setdefault(key, Backoff())


class Delivery:
    """A connection to the ledger's database with a spool behind it."""

    def __init__(self, settings: Settings, *, source: str) -> None:
        self.settings = settings
        self.source = source
        self._lock = threading.RLock()
        self._conn: Connection | None = None
        self._spool = Spool.for_database(settings)  # this database's folder only
        self._outage: str | None = None
        self._backoff = backoff_for(settings)
        _deliveries.add(self)

    def close(self) -> None:
        """Close the connection; the next call opens a new one."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def connection(self) -> Connection:
        """Return the open connection, (re)connecting and creating the raw schema if needed.

        A connect refused with "too many clients" is retried for BUSY_RETRY_SECONDS, with
        jitter; a connect that fails starts (or extends) the backoff.
        """
        with self._lock:
            if self._conn is None or self._conn.closed or self._conn.broken:
                self._conn = self._connect()
            return self._conn

    def write(
        self,
        documents: Sequence[Mapping[str, Any]],
        candidates: Sequence[Candidate],
        rejections: Sequence[Rejection],
    ) -> LoadResult:
        """Write a validated batch; during an outage spool it and return.

        `documents` are the batch as given (identity and time already fixed), numbered
        from 1 like the candidates' and rejections' line numbers. Only the candidates'
        documents are spooled as events; each rejection is spooled as a record that reaches
        the quarantine with its reason once the database is back.
        """
        with self._call():
            try:
                with database_errors(_FAILED):
                    conn = self._connection_unless_backing_off()
                    if self._spool.has_events():
                        self._spool.deliver(self._ingest)
                    result = write_batch(
                        conn,
                        candidates,
                        rejections,
                        source=self.source,
                        parked_max_age=self.settings.parked_max_age,
                    )
            except TransientError as error:
                self.close()
                if self.settings.strict:
                    raise
                spooled = self._spool_batch(documents, candidates, rejections, error)
                return LoadResult(spooled=spooled, rejections=list(rejections))
            if self._outage is not None:
                logger.warning("the ledger's database is back; spooled events were delivered")
                self._outage = None
            self._deliver_others()
            return result

    def flush(self) -> LoadResult:
        """Deliver this database's spool files (other processes' too), oldest first.

        Files that another process is appending to right now are left for later. A flush
        tries to connect even while the backoff says to wait: someone asked for it.
        """
        with self._call():
            total = LoadResult()
            with database_errors(_FAILED):
                for path in database_spool_files(self.settings):
                    deliver_file(
                        path, lambda stream, source: total.add(self._ingest(stream, source))
                    )
            return total

    def pipeline_id(self, run_key: str) -> int | None:
        """Return the integer id registered for `run_key`, or None when there is none."""
        with self._call(), database_errors(_FAILED):
            row = (
                self._connection_unless_backing_off()
                .execute("select pipeline_id from raw.runs where run_key = %s", [run_key])
                .fetchone()
            )
        return None if row is None else int(row[0])

    @contextmanager
    def _call(self) -> Iterator[None]:
        """Hold this Delivery for one call, and leave no transaction open whatever happens.

        A transaction still open when a call starts (left by an interrupted call, or by a
        caller on `connection()`) would swallow this call's writes; one left open by a
        failure inside the call would swallow the next. Either way the connection is
        closed, which makes the server roll the transaction back.
        """
        with self._lock:
            self._end_open_transaction()
            try:
                yield
            except BaseException:
                self._end_open_transaction()
                raise

    def _end_open_transaction(self) -> None:
        conn = self._conn
        if conn is not None and not conn.closed:
            status = conn.info.transaction_status
            if status != TransactionStatus.IDLE or not conn.autocommit:
                self._conn = None
                conn.close()

    def _connect(self) -> Connection:
        deadline = time.monotonic() + BUSY_RETRY_SECONDS
        delay = _BUSY_FIRST_DELAY
        while True:
            try:
                conn = self._open()
            except TransientError as error:
                pause = random.uniform(delay / 2, delay * 1.5)
                if _is_too_many_clients(error) and time.monotonic() + pause < deadline:
                    time.sleep(pause)
                    delay = min(delay * 2, _BUSY_MAX_DELAY)
                    continue
                self._backoff.failed()
                raise
            self._backoff.succeeded()
            return conn

    def _open(self) -> Connection:
        self.settings = connection.resolve(self.settings)
        conn = connection.open_connection(self.settings, autocommit=True)
        try:
            with database_errors(_FAILED):
                if not raw_schema_exists(conn):
                    create_raw_schema(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _connection_unless_backing_off(self) -> Connection:
        """Return the connection, or raise TransientError at once during an outage.

        Once a connect failed in this process (or the process adopted another's outage),
        only the background probe connects, until it succeeds.
        """
        unconnected = self._conn is None or self._conn.closed or self._conn.broken
        if unconnected and self._backoff.failures > 0:
            self._backoff.probe(self.settings)
            raise TransientError(
                "the ledger's database was unreachable moments ago; trying again in the background"
            )
        return self.connection()

    def _deliver_others(self) -> None:
        """Deliver other processes' spool files of this database that nobody holds.

        So that spooled events reach the database without a person running `flush`. Best
        effort, for OTHERS_SECONDS at most: the job's own events are stored already, so a
        failure here is logged and the files stay for the next call or `flush`.
        """
        deadline = time.monotonic() + OTHERS_SECONDS
        for path in spool_files(self._spool.directory):
            if path == self._spool.path:
                continue
            if time.monotonic() > deadline:
                return
            try:
                with database_errors(_FAILED):
                    deliver_file(path, self._ingest)
            except (LedgerError, OSError, psycopg.Error) as error:
                logger.warning("could not deliver the spool file %s: %s", path, error)
                self._end_open_transaction()
                if isinstance(error, TransientError):
                    self.close()
                    return

    def _ingest(self, stream: BinaryIO, source: str) -> LoadResult:
        """Deliver a spool file's events, and its quarantine records to the quarantine."""
        conn = self.connection()
        quarantined: dict[str, list[Rejection]] = {}
        with tempfile.SpooledTemporaryFile(max_size=_COPY_IN_MEMORY) as events:
            for line, is_record in _lines_in_chunks(stream):
                record = _quarantine_record(line) if is_record else None
                if record is None:
                    events.write(line)
                else:
                    quarantined.setdefault(record[0], []).append(record[1])
                    events.write(b"\n")  # keeps the line numbers of the lines after it
            events.seek(0)
            result = ingest_stream(
                conn,
                events,  # type: ignore[arg-type]  # a binary file, as typeshed does not say
                source=source,
                parked_max_age=self.settings.parked_max_age,
                max_line_bytes=self.settings.max_line_bytes,
            )
        for origin, rejections in quarantined.items():
            result.add(write_batch(conn, [], rejections, source=origin))
        return result

    def _spool_batch(
        self,
        documents: Sequence[Mapping[str, Any]],
        candidates: Sequence[Candidate],
        rejections: Sequence[Rejection],
        error: Exception,
    ) -> int:
        """Spool the valid events, and the rejections as quarantine records; return how many
        events the spool kept."""
        events = [documents[_index(candidate.line_number)] for candidate in candidates]
        records = [
            {
                _QUARANTINE_KEY: {
                    "origin": self.source,
                    "line_number": rejection.line_number,
                    "reason": rejection.reason,
                    "raw": base64.b64encode(rejection.raw).decode("ascii"),
                }
            }
            for rejection in rejections
        ]
        kept = self._spool.append([*events, *records])
        if self._outage is None:
            logger.warning(
                "the ledger's database is unreachable (%s); spooling events to %s",
                str(error).strip(),
                self._spool.path,
            )
        self._outage = str(error)
        return len(events) if kept else 0

    def _forget_connection_after_fork(self) -> None:
        # The parent's socket and lock are not ours: closing the socket would end the
        # parent's session, and the lock may have been held by a thread that does not
        # exist here. The child starts afresh, with a spool file of its own.
        self._lock = threading.RLock()
        self._conn = None
        self._spool = Spool.for_database(self.settings)
        self._outage = None


def _index(line_number: int | None) -> int:
    if line_number is None:
        raise ValueError("a call's events are numbered from 1")
    return line_number - 1


def _lines_in_chunks(stream: BinaryIO) -> Iterator[tuple[bytes, bool]]:
    """Yield a spool file's lines, a long event line in chunks (ingest caps its size).

    With each, whether it looks like a quarantine record, which this module wrote and
    which is yielded whole.
    """
    at_line_start = True
    while chunk := stream.readline(_CHUNK):
        is_record = at_line_start and chunk.startswith(_QUARANTINE_PREFIX)
        if is_record:
            while not chunk.endswith(b"\n") and (rest := stream.readline(_CHUNK)):
                chunk += rest
        yield chunk, is_record
        at_line_start = chunk.endswith(b"\n")


def _quarantine_record(line: bytes) -> tuple[str, Rejection] | None:
    """Return (origin, rejection) of a spooled quarantine record, or None if it is not one."""
    try:
        record = json.loads(line)[_QUARANTINE_KEY]
        line_number = record["line_number"]
        rejection = Rejection(
            str(record["reason"]),
            base64.b64decode(record["raw"], validate=True),
            line_number if isinstance(line_number, int) else None,
        )
        return str(record["origin"]), rejection
    except (ValueError, TypeError, KeyError):
        return None  # not a record we wrote (e.g. torn): delivered as a line, quarantined


def _is_too_many_clients(error: TransientError) -> bool:
    """Tell whether the server refused the connection for lack of slots (SQLSTATE 53300).

    libpq gives no SQLSTATE for a refused connection, so the server's (English) message
    is read too: "too many clients already", "too many connections for role ...".
    """
    cause = error.__cause__
    if not isinstance(cause, psycopg.OperationalError):
        return False
    message = str(cause)
    return cause.sqlstate == "53300" or any(
        text in message for text in ("too many clients", "too many connections")
    )


_deliveries: weakref.WeakSet[Delivery] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for delivery in list(_deliveries):
        delivery._forget_connection_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
