"""The Python API for pipeline jobs: explicit calls and context managers over run events."""

from __future__ import annotations

import json
import traceback
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from loader import connection
from loader.connection import Connection
from loader.errors import BadEventError, RejectedEventsError
from loader.events import derived_event_id, new_event_id, parse_event
from loader.schema import create_raw_schema, raw_schema_exists
from loader.settings import Settings
from loader.writer import Candidate, LoadResult, Rejection, write_batch

Attributes = Mapping[str, Any]


class Ledger:
    """A pipeline job's handle on the ledger: one connection per instance, opened lazily.

    Use it as a context manager, or call `close()`. Without settings it reads the
    `DATABASE_*` environment variables (and uses the embedded server when none is set).
    """

    def __init__(self, settings: Settings | None = None, *, source: str = "api") -> None:
        self._settings = settings or Settings.from_env()
        self._source = source
        self._conn: Connection | None = None

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
            if not raw_schema_exists(conn):
                create_raw_schema(conn)
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
        candidates: list[Candidate] = []
        rejections: list[Rejection] = []
        for number, document in enumerate(events, start=1):
            raw = _describe(document)
            try:
                event = parse_event({"event_time": _now(), **document})
            except BadEventError as error:
                rejections.append(Rejection(str(error), raw, number))
            else:
                candidates.append(Candidate(event, raw, number))
        result = write_batch(self.connection(), candidates, rejections, source=self._source)
        if result.rejections:
            raise RejectedEventsError([str(item) for item in result.rejections])
        return result

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
        starting the same run_key again with the same status records nothing new.
        """
        run_key = run_key or str(new_event_id())
        at = at or _now()
        run_event: dict[str, Any] = {"status": status, "attributes": attributes}
        stage_events = [{"stage_name": name, "status": "pending"} for name in stages]
        self.emit_many(
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
        row = (
            self.connection()
            .execute("select pipeline_id from raw.runs where run_key = %s", [run_key])
            .fetchone()
        )
        assert row is not None, "emit_many registered the run or raised"
        return Run(self, row[0], pipeline_name, run_key)

    def attach(self, pipeline_id: int) -> Run:
        """Return the handle of a run recorded earlier, by its integer id."""
        row = (
            self.connection()
            .execute(
                "select pipeline_name, run_key from raw.runs where pipeline_id = %s",
                [pipeline_id],
            )
            .fetchone()
        )
        if row is None:
            raise BadEventError("pipeline_id", f"{pipeline_id} is not a known run id")
        return Run(self, pipeline_id, row[0], row[1])

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

    def __init__(self, ledger: Ledger, pipeline_id: int, pipeline_name: str, run_key: str):
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


def _describe(document: Mapping[str, Any]) -> bytes:
    """Return the event as JSON bytes, as the quarantine keeps it."""
    return json.dumps(document, default=str, ensure_ascii=False).encode("utf-8", "replace")
