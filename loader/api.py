"""The Python API for pipeline jobs: explicit calls and context managers over run events."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, BinaryIO

import psycopg

from loader import connection
from loader.connection import Connection
from loader.errors import BadEventError, RejectedEventsError, TransientError
from loader.events import derived_event_id, document_bytes, new_event_id, parse_event
from loader.ingest import ingest_stream
from loader.schema import create_raw_schema, raw_schema_exists
from loader.settings import Settings
from loader.spool import Spool, deliver_file, spool_files
from loader.writer import Candidate, LoadResult, Rejection, write_batch

logger = logging.getLogger(__name__)

Attributes = Mapping[str, Any]


class Ledger:
    """A pipeline job's handle on the ledger: one connection per instance, opened lazily.

    Use it as a context manager, or call `close()`. Without settings it reads the
    `DATABASE_*` environment variables (and uses the embedded server when none is set).

    When the database cannot be reached, or fails mid-call, events go to a durable local
    spool and the call returns (one warning per outage); the next successful call
    delivers them first. With `strict` settings it raises TransientError instead.
    """

    def __init__(self, settings: Settings | None = None, *, source: str = "api") -> None:
        self._settings = settings or Settings.from_env()
        self._source = source
        self._conn: Connection | None = None
        self._spool = Spool(self._settings.spool_dir)
        self._outage: str | None = None

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection; the next call opens a new one."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def connection(self) -> Connection:
        """Return the open connection, (re)connecting and creating the raw schema if needed."""
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._settings = connection.resolve(self._settings)
            conn = connection.open_connection(self._settings, autocommit=True)
            try:
                if not raw_schema_exists(conn):
                    create_raw_schema(conn)
            except psycopg.OperationalError as error:
                conn.close()
                raise TransientError(f"the ledger's database failed: {error}") from error
            self._conn = conn
        return self._conn

    def emit(self, event: Mapping[str, Any]) -> LoadResult:
        """Record one contract event (a mapping of its fields); `event_time` defaults to now.

        Raise RejectedEventsError when the event breaks the contract; it is quarantined.
        """
        return self.emit_many([event])

    def emit_many(self, events: Iterable[Mapping[str, Any]]) -> LoadResult:
        """Record contract events in one transaction; duplicates (same `event_id`) count once.

        The good events are stored even when some are bad; then RejectedEventsError lists
        the bad ones (numbered from 1 in the order given), which are quarantined.
        """
        # Identity and time are fixed now, so that a spooled copy is the same event.
        documents = [
            {
                "event_time": _now(),
                **document,
                "event_id": document.get("event_id") or new_event_id(),
            }
            for document in events
        ]
        candidates: list[Candidate] = []
        rejections: list[Rejection] = []
        for number, document in enumerate(documents, start=1):
            try:
                candidates.append(
                    Candidate(parse_event(document), document_bytes(document), number)
                )
            except BadEventError as error:
                rejections.append(Rejection(str(error), document_bytes(document), number))
        try:
            result = self._write(candidates, rejections)
        except TransientError as error:
            if self._settings.strict:
                raise
            self._spool_events(documents, error)
            result = LoadResult(spooled=len(documents), rejections=rejections)
        if result.rejections:
            raise RejectedEventsError([str(item) for item in result.rejections])
        return result

    def flush(self) -> LoadResult:
        """Deliver every spool file in the spool folder (other processes' too), oldest first.

        Files that another process is appending to right now are left for later.
        """
        total = LoadResult()
        for path in spool_files(self._settings.spool_dir):
            deliver_file(path, lambda stream, source: total.add(self._ingest(stream, source)))
        return total

    def _write(
        self, candidates: Sequence[Candidate], rejections: Sequence[Rejection]
    ) -> LoadResult:
        try:
            conn = self.connection()
            if self._spool.has_events():
                self._spool.deliver(self._ingest)
            result = write_batch(conn, candidates, rejections, source=self._source)
        except psycopg.OperationalError as error:
            self.close()
            raise TransientError(f"the ledger's database failed: {error}") from error
        if self._outage is not None:
            logger.warning("the ledger's database is back; spooled events were delivered")
            self._outage = None
        return result

    def _ingest(self, stream: BinaryIO, source: str) -> LoadResult:
        return ingest_stream(self.connection(), stream, source=source)

    def _spool_events(self, documents: Sequence[Mapping[str, Any]], error: Exception) -> None:
        self.close()
        self._spool.append(documents)
        if self._outage is None:
            logger.warning(
                "the ledger's database is unreachable (%s); spooling events to %s",
                str(error).strip(),
                self._spool.path,
            )
        self._outage = str(error)

    def start_run(
        self,
        pipeline_name: str,
        *,
        run_key: str | None = None,
        stages: Sequence[str] = (),
        status: str = "running",
        at: datetime | None = None,
        attributes: Attributes | None = None,
    ) -> Run:
        """Record a new run (`running`, or `pending` when queued) and its planned stages.

        The planned stages are recorded as `pending`. `run_key` is the job's own id for the
        run (generated when absent); the same key always maps to the same integer id, and
        starting the same run_key again with the same status records nothing new. While
        the database is unreachable the run's `id` is None: its events name it by run_key.
        """
        run_key = run_key or str(new_event_id())
        at = at or _now()
        run_event: dict[str, Any] = {"status": status, "attributes": attributes}
        stage_events = [{"stage_name": name, "status": "pending"} for name in stages]
        result = self.emit_many(
            {
                "event_id": derived_event_id(
                    "start", run_key, event.get("stage_name") or "", event["status"]
                ),
                "run_key": run_key,
                "pipeline_name": pipeline_name,
                "event_time": at,
                **event,
            }
            for event in [run_event, *stage_events]
        )
        pipeline_id = None
        if not result.spooled:
            row = (
                self.connection()
                .execute("select pipeline_id from raw.runs where run_key = %s", [run_key])
                .fetchone()
            )
            assert row is not None, "emit_many registered the run or raised"
            pipeline_id = row[0]
        return Run(self, pipeline_id, pipeline_name, run_key)

    def attach(self, run: int | str) -> Run:
        """Return a handle on a run recorded earlier, by its integer id or its run_key.

        Nothing is looked up: an unknown id is rejected when the first event is recorded.
        """
        if isinstance(run, int):
            return Run(self, run, None, None)
        return Run(self, None, None, run)

    @contextmanager
    def run(
        self,
        pipeline_name: str,
        *,
        run_key: str | None = None,
        stages: Sequence[str] = (),
        attributes: Attributes | None = None,
    ) -> Iterator[Run]:
        """Record the run as `running`, then `completed` on normal exit or `failed` on error.

        The exception is recorded with its text (stack trace in attributes) and re-raised.
        """
        run = self.start_run(pipeline_name, run_key=run_key, stages=stages, attributes=attributes)
        try:
            yield run
        except BaseException as error:
            run.failed(_error_text(error), attributes=_stack_trace(error))
            raise
        run.completed(run.records)


class Run:
    """One pipeline run: report its stages and its end."""

    def __init__(
        self,
        ledger: Ledger,
        pipeline_id: int | None,
        pipeline_name: str | None,
        run_key: str | None,
    ) -> None:
        self.ledger = ledger
        self.id = pipeline_id
        self.pipeline_name = pipeline_name
        self.run_key = run_key
        self.records: int | None = None
        """Rows the run produced; `ledger.run(...)` reports it on completion."""

    def __repr__(self) -> str:
        return f"Run(id={self.id}, pipeline_name={self.pipeline_name!r}, run_key={self.run_key!r})"

    def stage(self, stage_name: str, *, attempt: int = 1) -> Stage:
        """Return the handle of one stage attempt; use it as a context manager or call it."""
        return Stage(self, stage_name, attempt)

    def completed(self, records: int | None = None, *, at: datetime | None = None) -> None:
        """Record that the whole run completed, with the rows it produced."""
        self.record("completed", records=records, at=at)

    def failed(
        self,
        error: str | None = None,
        *,
        records: int | None = None,
        at: datetime | None = None,
        attributes: Attributes | None = None,
    ) -> None:
        """Record that the whole run failed; without an error, the failed stage's is shown."""
        self.record("failed", records=records, error=error, at=at, attributes=attributes)

    def record(
        self,
        status: str,
        *,
        stage_name: str | None = None,
        records: int | None = None,
        error: str | None = None,
        attempt: int | None = None,
        at: datetime | None = None,
        attributes: Attributes | None = None,
        event_id: str | None = None,
    ) -> None:
        """Record any status of the run (or of one stage, with `stage_name`).

        Pass your own `event_id` to make a retried call count once.
        """
        self.ledger.emit(
            {
                "event_id": event_id,
                "pipeline_id": self.id,
                "run_key": self.run_key,
                "pipeline_name": self.pipeline_name,
                "stage_name": stage_name,
                "status": status,
                "event_time": at or _now(),
                "records_processed": records,
                "error_message": error,
                "attempt": attempt,
                "attributes": attributes,
            }
        )


class Stage:
    """One attempt of one stage of a run."""

    def __init__(self, run: Run, name: str, attempt: int = 1) -> None:
        self.run = run
        self.name = name
        self.attempt = attempt
        self.records: int | None = None
        """Rows handled; reported when the stage's `with` block ends."""

    def __repr__(self) -> str:
        return f"Stage(run_id={self.run.id}, name={self.name!r}, attempt={self.attempt})"

    def __enter__(self) -> Stage:
        self.started()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.completed(self.records)
        else:
            self.failed(_error_text(exc), records=self.records, attributes=_stack_trace(exc))

    def started(self, *, at: datetime | None = None) -> None:
        """Record that the stage is running."""
        self.record("running", at=at)

    def heartbeat(self, records: int | None = None, *, at: datetime | None = None) -> None:
        """Record that the stage is still running, with the rows handled so far."""
        if records is not None:
            self.records = records
        self.record("running", records=records, at=at)

    def completed(self, records: int | None = None, *, at: datetime | None = None) -> None:
        """Record that the stage completed, with the rows it handled in total."""
        self.record("completed", records=records, at=at)

    def failed(
        self,
        error: str | None = None,
        *,
        records: int | None = None,
        at: datetime | None = None,
        attributes: Attributes | None = None,
    ) -> None:
        """Record that this attempt of the stage failed, with its error."""
        self.record("failed", records=records, error=error, at=at, attributes=attributes)

    def record(self, status: str, **fields: Any) -> None:
        """Record any status of this stage attempt; takes `Run.record`'s keywords."""
        self.run.record(status, stage_name=self.name, attempt=self.attempt, **fields)


def _now() -> datetime:
    return datetime.now(UTC)


def _error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _stack_trace(error: BaseException) -> dict[str, str]:
    return {"stack_trace": "".join(traceback.format_exception(error))}
