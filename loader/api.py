"""The Python API for pipeline jobs: explicit calls and context managers over run events."""

from __future__ import annotations

import traceback
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from loader.batch import LoadResult, validate
from loader.connection import Connection
from loader.contract import derived_event_id, new_event_id
from loader.delivery import Delivery
from loader.errors import RejectedEventsError
from loader.events import document_bytes, parse_event
from loader.settings import Settings

Attributes = Mapping[str, Any]


class Ledger:
    """A pipeline job's handle on the ledger: the run vocabulary over one `Delivery`.

    Use it as a context manager, or call `close()`. Without settings it reads the
    `DATABASE_*` environment variables (and uses the embedded server when none is set).

    When the database cannot be reached, or fails mid-call, events go to a durable local
    spool and the call returns (one warning per outage); the next successful call
    delivers them first. With `strict` settings it raises TransientError instead.
    """

    def __init__(self, settings: Settings | None = None, *, source: str = "api") -> None:
        self._delivery = Delivery(settings or Settings.from_env(), source=source)

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection; the next call opens a new one."""
        self._delivery.close()

    def connection(self) -> Connection:
        """Return the open connection, (re)connecting and creating the raw schema if needed."""
        return self._delivery.connection()

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
        candidates, rejections = validate(
            (
                (number, document_bytes(document), document)
                for number, document in enumerate(documents, start=1)
            ),
            parse_event,
        )
        result = self._delivery.write(documents, candidates, rejections)
        if result.rejections:
            raise RejectedEventsError([str(item) for item in result.rejections])
        return result

    def flush(self) -> LoadResult:
        """Deliver every spool file in the spool folder (other processes' too), oldest first.

        Files that another process is appending to right now are left for later.
        """
        return self._delivery.flush()

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
            pipeline_id = self._delivery.pipeline_id(run_key)
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
