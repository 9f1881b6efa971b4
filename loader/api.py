"""The Python API for pipeline jobs: explicit calls and context managers over run events."""

from __future__ import annotations

import threading
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
from loader.errors import RejectedEventsError, TransientError
from loader.events import document_bytes, parse_event
from loader.settings import Settings

Attributes = Mapping[str, Any]


class Ledger:
    """A pipeline job's handle on the ledger: the run vocabulary over one `Delivery`.

    Use it as a context manager, or call `close()`. Without settings it reads the
    `DATABASE_*` environment variables (and uses the embedded server when none is set).

    When the database cannot be reached, or fails mid-call, events go to a durable local
    spool and the call returns (one warning per outage); after a failed connect, calls
    spool at once for a while (backoff), so an outage costs the job one connect timeout.
    The next successful call delivers the spool first. With `strict` settings it raises
    TransientError instead.

    One Ledger may be shared by threads: calls take turns on its one connection, and a
    call that fails leaves no transaction open. It pickles as its settings: unpickled in
    another process (a process pool's worker), it connects there on first use, and every
    Ledger unpickled in one process with the same settings shares one connection. Async
    code uses `loader.asynchronous.AsyncLedger`.
    """

    def __init__(self, settings: Settings | None = None, *, source: str = "api") -> None:
        self._delivery = Delivery(settings or Settings.from_env(), source=source)

    def __getstate__(self) -> dict[str, object]:
        return {"settings": self._delivery.settings, "source": self._delivery.source}

    @property
    def settings(self) -> Settings:
        """The settings this ledger reaches its database with."""
        return self._delivery.settings

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._delivery = _unpickled_delivery(state["settings"], state["source"])

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection; the next call opens a new one."""
        self._delivery.close()

    def connection(self) -> Connection:
        """Return the open connection, (re)connecting and creating the raw schema if needed.

        For the calling thread's own queries between calls; a transaction still open on it
        when the next call starts is rolled back (the connection is closed).
        """
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
        run_attempt: int = 1,
    ) -> Run:
        """Record a new run (`running`, or `pending` when queued) and its planned stages.

        The planned stages are recorded as `pending`. `run_key` is the job's own id for the
        run (generated when absent); the same key always maps to the same integer id, and
        starting the same run_key again with the same status records nothing new.
        `run_attempt` (from 1) re-opens a run retried under the same run_key (a flow's
        retry): every event of the returned Run carries it, and the highest decides. While
        the database is unreachable the run's `id` is None: its events name it by run_key,
        and so should a job that hands the run to another process (pass the Run itself, or
        its `run_key`, to `attach`).
        """
        run_key = run_key or str(new_event_id())
        at = at or _now()
        run_event: dict[str, Any] = {"status": status, "attributes": attributes}
        stage_events = [{"stage_name": name, "status": "pending"} for name in stages]
        # The first attempt keeps the ids it always had; a later one starts anew.
        retry = () if run_attempt == 1 else (str(run_attempt),)
        result = self.emit_many(
            {
                "event_id": derived_event_id(
                    "start", run_key, event.get("stage_name") or "", event["status"], *retry
                ),
                "run_key": run_key,
                "pipeline_name": pipeline_name,
                "event_time": at,
                "run_attempt": run_attempt,
                **event,
            }
            for event in [run_event, *stage_events]
        )
        pipeline_id = None
        if not result.spooled:
            try:
                pipeline_id = self._delivery.pipeline_id(run_key)
            except TransientError:
                if self._delivery.settings.strict:
                    raise
        return Run(self, pipeline_id, pipeline_name, run_key, run_attempt=run_attempt)

    def attach(self, run: Run | int | str, *, run_attempt: int | None = None) -> Run:
        """Return a handle on a run recorded earlier: a Run, its integer id or its run_key.

        A Run (e.g. one made in another process, while the database was unreachable) keeps
        its run_key, name and run attempt, so its events name it whether or not its id is
        known. `run_attempt` overrides the attempt (default: the Run's, else 1).
        Nothing is looked up: an unknown id is rejected when the first event is recorded.
        """
        if isinstance(run, Run):
            return Run(
                self,
                run.id,
                run.pipeline_name,
                run.run_key,
                run_attempt=run.run_attempt if run_attempt is None else run_attempt,
            )
        if isinstance(run, bool) or not isinstance(run, int | str):
            raise TypeError(
                f"attach takes a Run, an integer id or a run_key, not {run!r}; a run started"
                " while the database was unreachable has no id yet: pass the Run or its run_key"
            )
        if isinstance(run, int):
            return Run(self, run, None, None, run_attempt=run_attempt or 1)
        return Run(self, None, None, run, run_attempt=run_attempt or 1)

    @contextmanager
    def run(
        self,
        pipeline_name: str,
        *,
        run_key: str | None = None,
        stages: Sequence[str] = (),
        attributes: Attributes | None = None,
        run_attempt: int = 1,
    ) -> Iterator[Run]:
        """Record the run as `running`, then `completed` on normal exit or `failed` on error.

        The exception is recorded with its text (stack trace in attributes) and re-raised.
        `run_attempt` is `start_run`'s.
        """
        run = self.start_run(
            pipeline_name,
            run_key=run_key,
            stages=stages,
            attributes=attributes,
            run_attempt=run_attempt,
        )
        try:
            yield run
        except BaseException as error:
            run.failed(error_text(error), attributes=stack_trace(error))
            raise
        run.completed(run.records)


_unpickled: dict[tuple[Settings, str], Delivery] = {}
_unpickled_lock = threading.Lock()


def _unpickled_delivery(settings: Settings, source: str) -> Delivery:
    """Return this process's Delivery for Ledgers unpickled with these settings.

    A pool's worker unpickles a Ledger with every task it is given: they share one
    connection and one spool file instead of opening one each.
    """
    with _unpickled_lock:
        delivery = _unpickled.get((settings, source))
        if delivery is None:
            delivery = _unpickled[settings, source] = Delivery(settings, source=source)
        return delivery


class Run:
    """One pipeline run: report its stages and its end.

    Its events name the run by every name the handle knows: `id` (None until the
    database has answered), `run_key` and `pipeline_name`, and carry its `run_attempt`.
    A Run pickles with its Ledger.
    """

    def __init__(
        self,
        ledger: Ledger,
        pipeline_id: int | None,
        pipeline_name: str | None,
        run_key: str | None,
        *,
        run_attempt: int = 1,
    ) -> None:
        self.ledger = ledger
        self.id = pipeline_id
        self.pipeline_name = pipeline_name
        self.run_key = run_key
        self.run_attempt = run_attempt
        """Which attempt of the run this handle reports, from 1; every event carries it."""
        self.records: int | None = None
        """Rows the run produced; `ledger.run(...)` reports it on completion."""

    def __repr__(self) -> str:
        attempt = "" if self.run_attempt == 1 else f", run_attempt={self.run_attempt}"
        return (
            f"Run(id={self.id}, pipeline_name={self.pipeline_name!r},"
            f" run_key={self.run_key!r}{attempt})"
        )

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
                "run_attempt": self.run_attempt,
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
            self.failed(error_text(exc), records=self.records, attributes=stack_trace(exc))

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


def error_text(error: BaseException) -> str:
    """Return how a run or stage failure shows an exception: its type and message."""
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def stack_trace(error: BaseException) -> dict[str, str]:
    """Return the attributes that keep an exception's stack trace with its failure."""
    return {"stack_trace": "".join(traceback.format_exception(error))}
