"""The Python API for async code (e.g. a Prefect async flow): the same calls, awaited.

An AsyncLedger runs its Ledger's calls on a thread of its own, one at a time and in the
order they were made, so a slow or unreachable database holds up only the tasks that
await a call: never the event loop, nor the loop's default executor. A call, once made,
is carried out even if the task awaiting it is cancelled: its event is not lost.

    async with AsyncLedger() as ledger, ledger.run("daily_sales", stages=["extract"]) as run:
        async with run.stage("extract") as stage:
            stage.records = await extract()
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import datetime
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

from loader.api import Attributes, Ledger, Run, Stage, error_text, stack_trace
from loader.batch import LoadResult
from loader.settings import Settings

P = ParamSpec("P")
T = TypeVar("T")


class AsyncLedger:
    """A pipeline job's handle on the ledger for async code; see `loader.api.Ledger`.

    Use it as an async context manager, or await `aclose()`. `ledger` is the Ledger it
    wraps, for a thread or a process to use (it pickles; an AsyncLedger does not).
    """

    def __init__(
        self, settings: Settings | None = None, *, source: str = "api", ledger: Ledger | None = None
    ) -> None:
        self.ledger = ledger or Ledger(settings, source=source)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger")

    async def __aenter__(self) -> AsyncLedger:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection once the calls made before have been carried out."""
        await self.call(self.ledger.close)
        self._executor.shutdown(wait=False)

    async def emit(self, event: Mapping[str, Any]) -> LoadResult:
        """Record one contract event; see `Ledger.emit`."""
        return await self.call(self.ledger.emit, event)

    async def emit_many(self, events: Iterable[Mapping[str, Any]]) -> LoadResult:
        """Record contract events in one transaction; see `Ledger.emit_many`."""
        return await self.call(self.ledger.emit_many, list(events))

    async def flush(self) -> LoadResult:
        """Deliver this database's spool files; see `Ledger.flush`."""
        return await self.call(self.ledger.flush)

    async def start_run(
        self,
        pipeline_name: str,
        *,
        run_key: str | None = None,
        stages: Sequence[str] = (),
        status: str = "running",
        at: datetime | None = None,
        attributes: Attributes | None = None,
        run_attempt: int = 1,
    ) -> AsyncRun:
        """Record a new run and its planned stages; see `Ledger.start_run`."""
        run = await self.call(
            self.ledger.start_run,
            pipeline_name,
            run_key=run_key,
            stages=stages,
            status=status,
            at=at,
            attributes=attributes,
            run_attempt=run_attempt,
        )
        return AsyncRun(self, run)

    def attach(
        self, run: AsyncRun | Run | int | str, *, run_attempt: int | None = None
    ) -> AsyncRun:
        """Return a handle on a run recorded earlier; see `Ledger.attach`."""
        return AsyncRun(
            self,
            self.ledger.attach(
                run.run if isinstance(run, AsyncRun) else run, run_attempt=run_attempt
            ),
        )

    @asynccontextmanager
    async def run(
        self,
        pipeline_name: str,
        *,
        run_key: str | None = None,
        stages: Sequence[str] = (),
        attributes: Attributes | None = None,
        run_attempt: int = 1,
    ) -> AsyncIterator[AsyncRun]:
        """Record the run as `running`, then `completed`, or `failed` on an exception.

        A cancelled task's run is recorded as failed (`CancelledError`), and the
        cancellation propagates.
        """
        run = await self.start_run(
            pipeline_name,
            run_key=run_key,
            stages=stages,
            attributes=attributes,
            run_attempt=run_attempt,
        )
        try:
            yield run
        except BaseException as error:
            await run.failed(error_text(error), attributes=stack_trace(error))
            raise
        await run.completed(run.records)

    async def call(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `function` (a call of this Ledger's) on this AsyncLedger's thread; await it."""
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, functools.partial(function, *args, **kwargs))
        # Shielded: cancelling the awaiting task must not drop a call still waiting its turn.
        return await asyncio.shield(future)


class AsyncRun:
    """One pipeline run, for async code; see `loader.api.Run`."""

    def __init__(self, ledger: AsyncLedger, run: Run) -> None:
        self.ledger = ledger
        self.run = run
        """The Run it wraps: pass it (or its run_key) to a thread or another process."""

    def __repr__(self) -> str:
        return f"Async{self.run!r}"

    @property
    def id(self) -> int | None:
        """The integer pipeline_id, or None while the database has not answered."""
        return self.run.id

    @property
    def run_key(self) -> str | None:
        """The job's own id for the run."""
        return self.run.run_key

    @property
    def pipeline_name(self) -> str | None:
        """The pipeline's name, when this handle knows it."""
        return self.run.pipeline_name

    @property
    def run_attempt(self) -> int:
        """Which attempt of the run this handle reports, from 1."""
        return self.run.run_attempt

    @property
    def records(self) -> int | None:
        """Rows the run produced; `ledger.run(...)` reports it on completion."""
        return self.run.records

    @records.setter
    def records(self, value: int | None) -> None:
        self.run.records = value

    def stage(self, stage_name: str, *, attempt: int = 1) -> AsyncStage:
        """Return the handle of one stage attempt; use it as an async context manager."""
        return AsyncStage(self, self.run.stage(stage_name, attempt=attempt))

    async def completed(self, records: int | None = None, *, at: datetime | None = None) -> None:
        """Record that the whole run completed; see `Run.completed`."""
        await self.ledger.call(self.run.completed, records, at=at)

    async def failed(
        self,
        error: str | None = None,
        *,
        records: int | None = None,
        at: datetime | None = None,
        attributes: Attributes | None = None,
    ) -> None:
        """Record that the whole run failed; see `Run.failed`."""
        await self.ledger.call(
            self.run.failed, error, records=records, at=at, attributes=attributes
        )

    async def record(self, status: str, **fields: Any) -> None:
        """Record any status of the run (or of a stage); takes `Run.record`'s keywords."""
        await self.ledger.call(self.run.record, status, **fields)


class AsyncStage:
    """One attempt of one stage of a run, for async code; see `loader.api.Stage`."""

    def __init__(self, run: AsyncRun, stage: Stage) -> None:
        self.run = run
        self.stage = stage

    def __repr__(self) -> str:
        return f"Async{self.stage!r}"

    @property
    def name(self) -> str:
        """The stage's name."""
        return self.stage.name

    @property
    def attempt(self) -> int:
        """Which attempt of the stage this is, from 1."""
        return self.stage.attempt

    @property
    def records(self) -> int | None:
        """Rows handled; reported when the stage's `async with` block ends."""
        return self.stage.records

    @records.setter
    def records(self, value: int | None) -> None:
        self.stage.records = value

    async def __aenter__(self) -> AsyncStage:
        await self.started()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            await self.completed(self.records)
        else:
            await self.failed(error_text(exc), records=self.records, attributes=stack_trace(exc))

    async def started(self, *, at: datetime | None = None) -> None:
        """Record that the stage is running."""
        await self.record("running", at=at)

    async def heartbeat(self, records: int | None = None, *, at: datetime | None = None) -> None:
        """Record that the stage is still running, with the rows handled so far."""
        if records is not None:
            self.records = records
        await self.record("running", records=records, at=at)

    async def completed(self, records: int | None = None, *, at: datetime | None = None) -> None:
        """Record that the stage completed, with the rows it handled in total."""
        await self.record("completed", records=records, at=at)

    async def failed(
        self,
        error: str | None = None,
        *,
        records: int | None = None,
        at: datetime | None = None,
        attributes: Attributes | None = None,
    ) -> None:
        """Record that this attempt of the stage failed, with its error."""
        await self.record("failed", records=records, error=error, at=at, attributes=attributes)

    async def record(self, status: str, **fields: Any) -> None:
        """Record any status of this stage attempt; takes `Run.record`'s keywords."""
        await self.run.ledger.call(self.stage.record, status, **fields)
