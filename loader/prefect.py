"""Prefect 3: two lines record a flow and its tasks in the ledger, as Prefect saw them.

    @flow(retries=1, **ledger_flow("daily_sales", stages=STAGES))
    def daily_sales(): ...

    @task(retries=2, **ledger_task("Data Ingestion"))
    def ingest(): ...

The decorator forms, `@ledger_flow(...)` above `@flow(...)` and `@ledger_task(...)` above
`@task(...)`, add the ledger's hooks to those the flow or task already has; the keyword
forms take your own hooks as keywords of their own (`ledger_task("X", on_failure=[mine])`).

The run key is the root flow run's id and the run attempt its try; a task is a stage, its
attempt Prefect's `run_count`; a subflow is one stage and its tasks are `<subflow>/<task>`;
runs handed to the task runner (`.submit()`, `.map()`) are `<task>[<n>]`. Every time is
the `timestamp` of Prefect's own state. Hooks never fail a flow: a ledger error is logged.
Prefect calls no `on_failure` for a try it retries: a task's failed try is recorded from
its `retry_condition_fn` (yours, if any, still decides), a flow's from its AwaitingRetry
state when the next try starts. Tasks have no `on_crashed`: the flow's crash, failure or
cancellation closes the stages still running in this process. A runner or worker that
owns cancellation kills the flow's process and calls `on_cancellation` in its own: that
closes the stages Prefect has running, named from the flow's source and from the run name
`<task>[<n>]` a run handed to the task runner gets (unless the task names its runs). See
docs/prefect.md.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from prefect import Flow, Task
from prefect._internal.result_records import ResultRecord
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterParentTaskRunId,
    TaskRunFilter,
    TaskRunFilterId,
)
from prefect.client.schemas.objects import FlowRun, State, TaskRun
from prefect.context import FlowRunContext, TaskRunContext
from prefect.task_runners import TaskRunner

from loader.api import Ledger, Run, error_text, stack_trace
from loader.asynchronous import AsyncLedger
from loader.delivery import backoff_for

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Flow[Any, Any])
T = TypeVar("T", bound=Task[Any, Any])
Hook = Callable[..., Any]

_FLOW_RETRY_PREFIX = "Flow run encountered an exception: "


def records(count: int) -> None:
    """Report the rows the current task (or flow, or subflow) handled, inside its body.

    Reported when it ends, completed or failed; an `int` returned does the same.
    """
    task_context = TaskRunContext.get()
    if task_context is not None:
        key = task_context.task_run.id
    else:
        flow_context = FlowRunContext.get()
        if flow_context is None or flow_context.flow_run is None:
            raise RuntimeError("records() is called inside a Prefect task or flow run")
        key = flow_context.flow_run.id
    with _lock:
        _records[key] = count


@dataclass
class _Scope:
    """What one flow run (root or subflow) records under, in this process."""

    run: Run
    """The root's run, at the root's current try (`run.run_attempt`)."""
    prefix: str
    """Put before its tasks' names: "" for the root, "<subflow>/" for a subflow."""
    stage: str | None
    """A subflow's own stage in the root run; None for the root."""
    attempt: int
    """This flow run's try."""
    running: dict[str, int] = field(default_factory=dict)
    """Stages started in this process and not ended: name → attempt."""
    submitted: dict[UUID, str] = field(default_factory=dict)
    """Task runs handed to the task runner: id → stage name. A process pool's worker
    records its stages itself; one that dies records nothing more, so the flow's end
    asks Prefect which of them never finished."""


_lock = threading.Lock()
_scopes: dict[UUID, _Scope] = {}
_records: dict[UUID, int] = {}
_default: list[Ledger] = []
_async_ledgers: weakref.WeakKeyDictionary[Ledger, AsyncLedger] = weakref.WeakKeyDictionary()


def _default_ledger() -> Ledger:
    with _lock:
        if not _default:
            _default.append(Ledger())
        return _default[0]


class _Options(Mapping[str, Any]):
    """Keywords for `@flow(...)` / `@task(...)`, and a decorator for a Flow or a Task."""

    _HOOKS: tuple[str, ...] = ()

    def __init__(self, options: Mapping[str, Any]) -> None:
        self._options = dict(options)

    def _ours(self) -> dict[str, Any]:
        raise NotImplementedError

    def _keywords(self) -> dict[str, Any]:
        keywords = dict(self._options)
        for name, hook in self._ours().items():
            if name in self._HOOKS:
                keywords[name] = [*keywords.get(name, ()), hook]
            else:
                keywords[name] = hook
        return keywords

    def __getitem__(self, key: str) -> Any:
        return self._keywords()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keywords())

    def __len__(self) -> int:
        return len(self._keywords())


class _FlowHooks:
    """The ledger's state hooks of one flow: they record its runs (see the module)."""

    def __init__(self, pipeline_name: str, stages: Sequence[str], ledger: Ledger | None) -> None:
        self.pipeline_name = pipeline_name
        self.stages = tuple(stages)
        self._ledger = ledger

    @property
    def ledger(self) -> Ledger:
        return self._ledger or _default_ledger()

    def on_running(self, flow: Flow[Any, Any], flow_run: FlowRun, state: State) -> Any:
        """Start the run (or the subflow's stage); on a retry, end the try before."""
        with _lock:
            known = _scopes.get(flow_run.id)
        # Prefect's flow_run.run_count here still counts the tries before this one.
        attempt = known.attempt + 1 if known else flow_run.run_count + 1
        parent = None
        if flow_run.parent_task_run_id is not None:
            context = FlowRunContext.get()
            if context is not None and context.flow_run and context.flow_run.id != flow_run.id:
                with _lock:
                    parent = _scopes.get(context.flow_run.id)
            if parent is None and known is None:
                return None  # a subflow of a flow the ledger does not record
        if not isinstance(flow.task_runner, _NumberingRunner):
            flow.task_runner = _NumberingRunner(flow.task_runner)

        def call() -> None:
            previous = known
            if attempt > 1 and previous is not None:
                at, error = _retried_failure(flow_run.id, state)
                _close(previous, at, error)
                if previous.stage is None:
                    previous.run.failed(error, at=at)
                else:
                    _stage_record(
                        previous.run, previous.stage, previous.attempt, "failed", at, error
                    )
            if flow_run.parent_task_run_id is None:
                run = self.ledger.start_run(
                    self.pipeline_name,
                    run_key=str(flow_run.id),
                    stages=self.stages,
                    run_attempt=attempt,
                    at=state.timestamp,
                )
                scope = _Scope(run, "", None, attempt)
            else:
                outer = parent or previous
                assert outer is not None
                name = (parent.prefix if parent else _parent_prefix(outer)) + flow.name
                scope = _Scope(outer.run, name + "/", name, attempt)
                _stage_record(scope.run, name, attempt, "running", state.timestamp)
            with _lock:
                _scopes[flow_run.id] = scope

        return _deliver(self.ledger, call)

    def on_completion(self, flow: Flow[Any, Any], flow_run: FlowRun, state: State) -> Any:
        """Complete the run (or the subflow's stage) with its records."""
        return self._end(flow_run, state, "completed")

    def on_failure(self, flow: Flow[Any, Any], flow_run: FlowRun, state: State) -> Any:
        """Fail the run (or the subflow's stage) with its error; close its open stages."""
        return self._end(flow_run, state, "failed")

    def on_crashed(self, flow: Flow[Any, Any], flow_run: FlowRun, state: State) -> Any:
        """Fail the run with the crash's message; close its open stages."""
        return self._end(flow_run, state, "failed")

    def on_cancellation(self, flow: Flow[Any, Any], flow_run: FlowRun, state: State) -> Any:
        """Fail the run as cancelled, at the Cancelled state's time; close its open stages.

        Prefect calls this at Cancelling and sets Cancelled just after it returns: a thread
        waits for Cancelled (up to 2 s, else Cancelling's time) and records then.
        """
        with _lock:
            known = flow_run.id in _scopes
        if not known:
            return self._cancelled_elsewhere(flow, flow_run, state)

        def wait_then_record() -> None:
            final = state
            try:
                with get_client(sync_client=True) as client:
                    for _ in range(20):
                        time.sleep(0.1)
                        current = client.read_flow_run(flow_run.id).state
                        if current is not None and current.is_cancelled():
                            final = current
                            break
            except Exception:  # the API is gone: Cancelling's time
                logger.debug("no Cancelled state for %s", flow_run.id, exc_info=True)
            self._end(flow_run, final, "failed")

        threading.Thread(target=wait_then_record, name="ledger-cancelled").start()
        return None

    def _cancelled_elsewhere(self, flow: Flow[Any, Any], flow_run: FlowRun, state: State) -> Any:
        """Fail the run of a flow whose process this is not (a runner or worker that owns
        cancellation kills the flow's process and calls the hook itself, at Cancelled),
        and the stages Prefect has still running in it.
        """
        if flow_run.parent_task_run_id is not None:
            return None  # a subflow is a stage of its root run: its root closes it
        error = _state_error(state)

        def call() -> None:
            run = self.ledger.attach(str(flow_run.id), run_attempt=max(flow_run.run_count, 1))
            for name, attempt in _left_open(flow, flow_run.id).items():
                _stage_record(run, name, attempt, "failed", state.timestamp, error)
            run.failed(error, at=state.timestamp)

        return _deliver(self.ledger, call)

    def _end(self, flow_run: FlowRun, state: State, status: str) -> Any:
        with _lock:
            scope = _scopes.get(flow_run.id)
            count = _records.pop(flow_run.id, None)
        if scope is None:
            return None
        count = count if count is not None else _returned_count(state)

        def call() -> None:
            error = None if status == "completed" else _state_error(state)
            _close(scope, state.timestamp, error)
            if scope.stage is None:
                scope.run.record(
                    status, records=count, error=error, at=state.timestamp, attributes=None
                )
            else:
                _stage_record(
                    scope.run, scope.stage, scope.attempt, status, state.timestamp, error, count
                )

        return _deliver(scope.run.ledger, call)


class _TaskHooks:
    """The ledger's state hooks of one task: each run is a stage (see the module)."""

    def __init__(
        self,
        stage_name: str | None,
        retry_condition_fn: Hook | None,
        index: int | None = None,
        scope: tuple[UUID, _Scope] | None = None,
    ) -> None:
        self.stage_name = stage_name
        self.user_retry_condition = retry_condition_fn
        self.index = index
        """Which run of the task handed to the flow run's task runner this is, from 0."""
        self.scope = scope
        """The submitting flow run's id and scope: a process pool's worker records under it."""

    def numbered(self, index: int, scope: tuple[UUID, _Scope] | None) -> _TaskHooks:
        """Return these hooks for the `index`-th run handed to the task runner."""
        return _TaskHooks(self.stage_name, self.user_retry_condition, index, scope)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if self.scope is not None:
            flow_run_id, scope = self.scope
            # A worker's copy carries the scope without its open stages, and the parent's
            # backoff, so that an outage costs the flow one connect timeout, not one per worker.
            carried = _Scope(scope.run, scope.prefix, scope.stage, scope.attempt)
            state["scope"] = (flow_run_id, carried)
            state["backoff"] = _backoff_state(scope.run.ledger)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        backoff = state.pop("backoff", None)
        self.__dict__.update(state)
        if self.scope is not None:
            flow_run_id, scope = self.scope
            if backoff is not None:
                _adopt_backoff(scope.run.ledger, *backoff)
            with _lock:
                self.scope = (flow_run_id, _scopes.setdefault(flow_run_id, scope))

    def on_running(self, task: Task[Any, Any], task_run: TaskRun, state: State) -> Any:
        """Record the stage's try as running."""
        return self._record(task, task_run, state, "running")

    def on_completion(self, task: Task[Any, Any], task_run: TaskRun, state: State) -> Any:
        """Record the stage's try as completed, with its records."""
        return self._record(task, task_run, state, "completed")

    def on_failure(self, task: Task[Any, Any], task_run: TaskRun, state: State) -> Any:
        """Record the stage's last try as failed, with its error."""
        return self._record(task, task_run, state, "failed")

    def retry_condition_fn(self, task: Task[Any, Any], task_run: TaskRun, state: State) -> Any:
        """Decide as the task's own condition would (retry by default); record a retried try."""
        decision: Any = True
        if self.user_retry_condition is not None:
            decision = self.user_retry_condition(task, task_run, state)
        if inspect.isawaitable(decision):
            return self._after(decision, task, task_run, state)
        if decision:
            pending = self._record(task, task_run, state, "failed")
            if pending is not None:
                return self._then(pending, decision)
        return decision

    async def _after(
        self, decision: Awaitable[Any], task: Task[Any, Any], task_run: TaskRun, state: State
    ) -> Any:
        result = await decision
        if result:
            pending = self._record(task, task_run, state, "failed")
            if pending is not None:
                await pending
        return result

    @staticmethod
    async def _then(pending: Awaitable[None], decision: Any) -> Any:
        await pending
        return decision

    def _record(self, task: Task[Any, Any], task_run: TaskRun, state: State, status: str) -> Any:
        if task_run.flow_run_id is None:
            return None
        scope = None
        if self.scope is not None and self.scope[0] == task_run.flow_run_id:
            scope = self.scope[1]
        scope = scope or _scope_for(task_run.flow_run_id)
        if scope is None:
            return None
        name = scope.prefix + (self.stage_name or task.name)
        if self.index is not None:
            name += f"[{self.index}]"
        attempt = max(task_run.run_count, 1)
        count = None
        with _lock:
            if status == "running":
                scope.running[name] = attempt
            else:
                scope.running.pop(name, None)
                if status == "completed" or not state.is_running():
                    count = _records.pop(task_run.id, None)
        if status == "completed" and count is None:
            count = _returned_count(state)
        error = _state_error(state) if status == "failed" else None
        attributes = _state_attributes(state) if status == "failed" else None
        return _deliver(
            scope.run.ledger,
            lambda: _stage_record(
                scope.run, name, attempt, status, state.timestamp, error, count, attributes
            ),
        )


class ledger_flow(_Options):  # used like a function: @flow(**ledger_flow(...))
    """Record a Prefect flow's runs as runs of `pipeline_name`, with planned `stages`.

    `@flow(**ledger_flow("daily_sales", stages=STAGES))`, or `@ledger_flow(...)` above
    `@flow(...)`, which keeps the flow's own hooks. Other keywords are `@flow`'s (pass your
    own hooks here in the keyword form). `ledger` defaults to one `Ledger()` per process.
    """

    _HOOKS = ("on_running", "on_completion", "on_failure", "on_crashed", "on_cancellation")

    def __init__(
        self,
        pipeline_name: str,
        *,
        stages: Sequence[str] = (),
        ledger: Ledger | None = None,
        **options: Any,
    ) -> None:
        super().__init__(options)
        self.hooks = _FlowHooks(pipeline_name, stages, ledger)

    def _ours(self) -> dict[str, Any]:
        return {name: getattr(self.hooks, name) for name in self._HOOKS}

    def __call__(self, flow: F) -> F:
        """Return the flow with the ledger's hooks added to its own."""
        hooks: dict[str, Any] = {
            name: [*getattr(flow, f"{name}_hooks"), hook] for name, hook in self._ours().items()
        }
        return flow.with_options(**self._options, **hooks)  # type: ignore[return-value]


class ledger_task(_Options):  # used like a function: @task(**ledger_task(...))
    """Record a Prefect task's runs as stage `stage_name` (default: the task's name).

    `@task(retries=2, **ledger_task("Data Ingestion"))`, or `@ledger_task(...)` above
    `@task(...)`, which keeps the task's own hooks and `retry_condition_fn`. Other keywords
    are `@task`'s (pass your own hooks and `retry_condition_fn` here in the keyword form).
    """

    _HOOKS = ("on_running", "on_completion", "on_failure")

    def __init__(self, stage_name: str | None = None, **options: Any) -> None:
        super().__init__(options)
        self.stage_name = stage_name
        self.hooks = _TaskHooks(stage_name, self._options.get("retry_condition_fn"))

    def _ours(self) -> dict[str, Any]:
        return {
            **{name: getattr(self.hooks, name) for name in self._HOOKS},
            "retry_condition_fn": self.hooks.retry_condition_fn,
        }

    def __call__(self, task: T) -> T:
        """Return the task with the ledger's hooks added to its own."""
        options = {key: value for key, value in self._options.items() if key != "name"}
        hooks = _TaskHooks(self.stage_name, task.retry_condition_fn)
        keywords: dict[str, Any] = {
            name: [*getattr(task, f"{name}_hooks"), getattr(hooks, name)] for name in self._HOOKS
        }
        keywords["retry_condition_fn"] = hooks.retry_condition_fn
        return task.with_options(**options, **keywords)  # type: ignore[return-value]


class _NumberingRunner(TaskRunner[Any]):
    """A flow's task runner, numbering the runs of each task handed to it (from 0).

    Each submitted run gets its own copy of the task whose ledger hooks know its number,
    so the number reaches a process pool's worker too. Everything else is the wrapped
    runner's.
    """

    def __init__(self, inner: TaskRunner[Any]) -> None:
        self.inner = inner  # first: TaskRunner's __init__ reads `name`
        super().__init__()  # type: ignore[no-untyped-call]
        self._counts: dict[str, int] = {}
        self._counts_lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.inner.name

    def duplicate(self) -> _NumberingRunner:
        return _NumberingRunner(self.inner.duplicate())

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled in the flow a process pool's worker gets: its lock and counts stay here.
        return (_NumberingRunner, (self.inner,))

    def submit(
        self,
        task: Task[Any, Any],
        parameters: dict[str, Any],
        wait_for: Any = None,
        dependencies: Any = None,
    ) -> Any:
        numbered, name, scope = self._numbered(task)
        future = self.inner.submit(numbered, parameters, wait_for, dependencies)
        task_run_id = getattr(future, "task_run_id", None)
        if scope is not None and name is not None and task_run_id is not None:
            with _lock:
                scope.submitted[task_run_id] = name
        return future

    def __enter__(self) -> _NumberingRunner:
        self.inner.__enter__()
        super().__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        try:
            self.inner.__exit__(*exc_info)
        finally:
            super().__exit__(*exc_info)

    def __getattr__(self, name: str) -> Any:
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def _numbered(self, task: Task[Any, Any]) -> tuple[Task[Any, Any], str | None, _Scope | None]:
        """The task with hooks that know its number; its stage name and flow run's scope."""
        ours = _task_hooks(task)
        if ours is None:
            return task, None, None
        key = ours.stage_name or task.name
        with self._counts_lock:
            index = self._counts.get(key, 0)
            self._counts[key] = index + 1
        context = FlowRunContext.get()
        scope = None
        if context is not None and context.flow_run is not None:
            with _lock:
                known = _scopes.get(context.flow_run.id)
            scope = (context.flow_run.id, known) if known is not None else None
        numbered = ours.numbered(index, scope)

        def swap(hooks: list[Hook]) -> list[Hook]:
            return [
                getattr(numbered, hook.__name__)
                if getattr(hook, "__self__", None) is ours
                else hook
                for hook in hooks
            ]

        renamed = task.with_options(
            on_running=swap(task.on_running_hooks),
            on_completion=swap(task.on_completion_hooks),
            on_failure=swap(task.on_failure_hooks),
            retry_condition_fn=numbered.retry_condition_fn,
            # The run's name carries its number to a runner's process, which never saw
            # the run (not a tag: any tag makes Prefect take a concurrency lease per run).
            task_run_name=task.task_run_name or f"{task.name}[{index}]",
        )
        if scope is None:
            return renamed, None, None
        return renamed, f"{scope[1].prefix}{key}[{index}]", scope[1]


def _task_hooks(task: Task[Any, Any]) -> _TaskHooks | None:
    for hook in task.on_running_hooks:
        owner = getattr(hook, "__self__", None)
        if isinstance(owner, _TaskHooks):
            return owner
    return None


def _stage_record(  # noqa: PLR0917  # the event's fields, in the contract's order
    run: Run,
    name: str,
    attempt: int,
    status: str,
    at: datetime,
    error: str | None = None,
    count: int | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> None:
    run.record(
        status,
        stage_name=name,
        attempt=attempt,
        records=count,
        error=error,
        at=at,
        attributes=attributes,
    )


def _close(scope: _Scope, at: datetime, error: str | None) -> None:
    """Fail the stages still running in this flow run (tasks have no `on_crashed`).

    Those started in this process are known here; of those handed to the task runner,
    Prefect says which never reached a final state (a killed worker reports nothing).
    """
    with _lock:
        running = dict(scope.running)
        scope.running.clear()
        submitted = {i: name for i, name in scope.submitted.items() if name not in running}
        scope.submitted.clear()
    if error is not None and submitted:
        running.update(_unfinished(submitted))
    for name, attempt in running.items():
        _stage_record(scope.run, name, attempt, "failed", at, error or "the flow run ended")


def _unfinished(submitted: Mapping[UUID, str]) -> dict[str, int]:
    """The submitted task runs that Prefect has in no final state: name → try."""
    try:
        with get_client(sync_client=True) as client:
            task_runs = client.read_task_runs(
                task_run_filter=TaskRunFilter(id=TaskRunFilterId(any_=list(submitted)))
            )
    except Exception:  # the API is gone: nothing more to learn
        logger.debug("cannot read the submitted task runs", exc_info=True)
        return {}
    return {
        submitted[task_run.id]: max(task_run.run_count, 1)
        for task_run in task_runs
        if _still_open(task_run.state)
    }


def _still_open(state: State | None) -> bool:
    return state is None or not state.is_final() or state.is_crashed()


def _left_open(flow: Flow[Any, Any], flow_run_id: UUID) -> dict[str, int]:
    """The stages Prefect has not finished in a flow run and its subflows: name → try.

    A task run belongs to the ledger task the flow's source names with its `task_key`, and
    its name tells a run handed to the task runner (`<task>[<n>]`) from a direct call; a
    subflow is a stage when its flow has the ledger's hooks. A run Prefect never heard of
    (a process killed before its Running state reached the API) is not known here.
    """
    recorded = _recorded_flows(flow)
    left: dict[str, int] = {}
    try:
        with get_client(sync_client=True) as client:
            pending = [(flow_run_id, flow.name, "")]
            while pending:
                run_id, flow_name, prefix = pending.pop()
                task_runs = client.read_task_runs(
                    flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))
                )
                subflows = client.read_flow_runs(
                    flow_run_filter=FlowRunFilter(
                        parent_task_run_id=FlowRunFilterParentTaskRunId(
                            any_=[task_run.id for task_run in task_runs]
                        )
                    )
                )
                tasks = recorded.get(flow_name, {})
                for task_run in task_runs:
                    name = _stage_of(task_run, tasks.get(task_run.task_key))
                    if name is not None and _still_open(task_run.state):
                        left[prefix + name] = max(task_run.run_count, 1)
                for subflow in subflows:
                    name = client.read_flow(subflow.flow_id).name
                    if name in recorded and _still_open(subflow.state):
                        left[prefix + name] = max(subflow.run_count, 1)
                    pending.append((subflow.id, name, f"{prefix}{name}/"))
    except Exception:  # the API is gone: the run is failed all the same
        logger.debug("cannot read what %s left running", flow_run_id, exc_info=True)
    return left


def _stage_of(task_run: TaskRun, task: Task[Any, Any] | None) -> str | None:
    """The stage of a task run of a ledger task, from the run's name: `<task>[<n>]` for the
    n-th run handed to the task runner, Prefect's `<task>-<key>` for a direct call.
    None when the task names its own runs (then the two cannot be told apart)."""
    hooks = _task_hooks(task) if task is not None else None
    if task is None or hooks is None or task.task_run_name:
        return None
    stage = hooks.stage_name or task.name
    number = task_run.name.removeprefix(f"{task.name}[").removesuffix("]")
    if number.isdigit() and task_run.name == f"{task.name}[{number}]":
        return f"{stage}[{number}]"
    return stage if task_run.name.startswith(f"{task.name}-") else None


def _recorded_flows(flow: Flow[Any, Any]) -> dict[str, dict[str, Task[Any, Any]]]:
    """The flow and the subflows its source names that have the ledger's hooks, by name:
    the ledger tasks each one's source names, by `task_key`."""
    recorded: dict[str, dict[str, Task[Any, Any]]] = {}
    pending = [flow]
    while pending:
        current = pending.pop()
        if current.name in recorded or _flow_hooks(current) is None:
            continue
        tasks = recorded[current.name] = {}
        for value in _named_in(current.fn):
            if isinstance(value, Flow):
                pending.append(value)
            elif isinstance(value, Task) and _task_hooks(value) is not None:
                tasks[value.task_key] = value
    return recorded


def _named_in(function: Callable[..., Any]) -> Iterator[Any]:
    """The values a function's body names: its globals and free variables, and the
    attributes it reads of modules among them (`tasks.ingest`)."""
    names = inspect.getclosurevars(inspect.unwrap(function))
    for value in [*names.nonlocals.values(), *names.globals.values()]:
        yield value
        if inspect.ismodule(value):
            yield from (getattr(value, attr) for attr in names.unbound if hasattr(value, attr))


def _backoff_state(ledger: Ledger) -> tuple[int, float]:
    """This process's backoff for the ledger's database: failures, seconds left."""
    backoff = backoff_for(ledger.settings)
    return backoff.failures, backoff.remaining()


def _adopt_backoff(ledger: Ledger, failures: int, remaining: float) -> None:
    """Wait out the submitting process's backoff here too, instead of connecting to learn it."""
    if remaining <= 0:
        return
    backoff = backoff_for(ledger.settings)
    backoff.adopt(failures, remaining)


def _parent_prefix(scope: _Scope) -> str:
    stage = scope.stage or ""
    return stage[: stage.rfind("/") + 1]


def _scope_for(flow_run_id: UUID) -> _Scope | None:
    """The scope of a task's flow run: this process's, or found through Prefect's API.

    The API tells a process pool's worker, or a subflow without `ledger_flow`, which root
    run and which subflows it is under.
    """
    with _lock:
        scope = _scopes.get(flow_run_id)
    if scope is not None:
        return scope
    context = FlowRunContext.get()
    if context is None or context.flow_run is None or context.flow_run.id != flow_run_id:
        return None
    flow_run = context.flow_run
    names: list[str] = []
    with get_client(sync_client=True) as client:
        while flow_run.parent_task_run_id is not None:
            names.insert(0, client.read_flow(flow_run.flow_id).name)
            parent_task = client.read_task_run(flow_run.parent_task_run_id)
            if parent_task.flow_run_id is None:
                return None
            flow_run = client.read_flow_run(parent_task.flow_run_id)
    with _lock:
        root = _scopes.get(flow_run.id)
    hooks = _flow_hooks(context.flow)
    if root is not None:
        run = root.run
    elif hooks is not None and not names:
        run = hooks.ledger.attach(str(flow_run.id), run_attempt=max(flow_run.run_count, 1))
    else:
        return None
    prefix = "".join(f"{name}/" for name in names)
    scope = _Scope(run, prefix, prefix[:-1] or None, 1)
    with _lock:
        return _scopes.setdefault(flow_run_id, scope)


def _flow_hooks(flow: Flow[Any, Any] | None) -> _FlowHooks | None:
    for hook in getattr(flow, "on_running_hooks", ()):
        owner = getattr(hook, "__self__", None)
        if isinstance(owner, _FlowHooks):
            return owner
    return None


def _value(state: State) -> Any:
    data = state.data
    return data.result if isinstance(data, ResultRecord) else data


def _returned_count(state: State) -> int | None:
    value = _value(state)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _state_error(state: State) -> str:
    value = _value(state)
    if isinstance(value, BaseException):
        return error_text(value)
    message = state.message or state.name or "failed"
    return message.removeprefix(_FLOW_RETRY_PREFIX)


def _state_attributes(state: State) -> dict[str, str] | None:
    value = _value(state)
    return stack_trace(value) if isinstance(value, BaseException) else None


def _retried_failure(flow_run_id: UUID, running: State) -> tuple[datetime, str]:
    """The time and error of a flow run's try that Prefect retried (its AwaitingRetry)."""
    with get_client(sync_client=True) as client:
        states = client.read_flow_run_states(flow_run_id)
    earlier = [state for state in states if state.timestamp < running.timestamp]
    retried = [state for state in earlier if state.name == "AwaitingRetry"]
    state = (retried or earlier or [running])[-1]
    return state.timestamp, (state.message or "retried").removeprefix(_FLOW_RETRY_PREFIX)


def _deliver(ledger: Ledger, call: Callable[[], None]) -> Awaitable[None] | None:
    """Make the ledger's calls now, or, on an event loop, on the ledger's own thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        _guarded(call)
        return None
    with _lock:
        async_ledger = _async_ledgers.get(ledger)
        if async_ledger is None:
            async_ledger = _async_ledgers[ledger] = AsyncLedger(ledger=ledger)
    return async_ledger.call(_guarded, call)


def _guarded(call: Callable[[], None]) -> None:
    try:
        call()
    except Exception:  # a hook must never change what the flow does
        logger.exception("the ledger could not record a Prefect state")
