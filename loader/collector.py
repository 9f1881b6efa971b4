"""The HTTP collector's core: request bodies into batches, and group commit behind them.

No HTTP here (`loader.serve` is the web layer): this module turns a request's body into
numbered documents, candidates and rejections (`native_request`, `lineage_request`), and
`Collector` stores them. One writer thread drains a queue of requests and stores all the
requests waiting at that moment in one `Delivery.write` (one transaction): concurrent
requests share a commit, and each request's future is resolved only once its events are
durable, committed or fsync'd in the spool. A group's futures are resolved together, with
one wake-up of their event loop: under load, a wake-up per request cost the loop more than
the request's own parsing.

While the database is down, `Delivery` spools the events; the writer thread then tries to
deliver the spool every `REDELIVERY_SECONDS`, with no request needed. OpenLineage events
that are not about a run (DatasetEvents, JobEvents) have no place in the contract: they go
to `raw.openlineage_other_events` as they came, with an id derived from their content (a
client's retry counts once), and have a spool folder of their own beside the database's.
"""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import hashlib
import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import psycopg

from loader import fields
from loader.batch import Candidate, LoadResult, Rejection
from loader.connection import database_errors
from loader.contract import derived_event_id, new_event_id
from loader.delivery import Delivery, backoff_for
from loader.errors import BadEventError, LedgerError, TransientError
from loader.events import decode_document, document_bytes, parse_event
from loader.native_fast import decode_plain_line
from loader.openlineage import is_run_event
from loader.schema import create_raw_schema
from loader.settings import Settings
from loader.spool import Spool, database_folder, database_spool_files, deliver_file, spool_files

logger = logging.getLogger(__name__)

SOURCE = "collector"
"""The quarantine's `origin` for what the collector rejects; line numbers count in a group."""
REDELIVERY_SECONDS = 1.0
"""While events wait in the spool, how often the writer thread tries to deliver them."""
MAX_GROUP_EVENTS = 5_000
"""A group commit stops taking waiting requests past this many events."""
OTHER_EVENTS_TABLE = "raw.openlineage_other_events"
_INSERT_OTHER = (
    "insert into raw.openlineage_other_events (event_id, event_kind, payload)"
    " select * from unnest(%s::uuid[], %s::text[], %s::jsonb[])"
    " on conflict (event_id) do nothing"
)
_STOP = object()
_LOST = (
    "the database is unreachable and the collector's spool could not keep the events: retry later"
)


class RequestError(LedgerError):
    """A request the collector refuses whole, with the HTTP status and the reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class OtherEvent:
    """An OpenLineage DatasetEvent or JobEvent, stored as it came."""

    event_id: uuid.UUID
    kind: str
    payload: Mapping[str, Any]


@dataclass(slots=True)
class Work:
    """One request's events: documents numbered from 1, their candidates and rejections."""

    documents: list[Mapping[str, Any]] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    others: list[OtherEvent] = field(default_factory=list)
    single: bool = False
    """One event (an object, an OpenLineage event): reasons then name no event number."""

    @property
    def received(self) -> int:
        return len(self.documents) + len(self.others)


@dataclass(slots=True)
class Outcome:
    """What a request's events became; `status` is the HTTP status to answer with."""

    status: int
    received: int = 0
    stored: int = 0
    rejected: int = 0
    spooled: int = 0
    reasons: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "received": self.received,
            "stored": self.stored,
            "rejected": self.rejected,
            "spooled": self.spooled,
        }
        if self.reasons:
            body["reasons"] = self.reasons
        return body


@dataclass
class Totals:
    """Counters since start, for /metrics; updated by the writer thread under a lock."""

    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    parked: int = 0
    spooled: int = 0
    other_events: int = 0
    groups: int = 0
    lost: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def snapshot(self) -> dict[str, int]:
        with self.lock:
            return {
                name: getattr(self, name)
                for name in (
                    "accepted",
                    "duplicates",
                    "rejected",
                    "parked",
                    "spooled",
                    "other_events",
                    "groups",
                    "lost",
                )
            }


# ---- request bodies -----------------------------------------------------------------------


def native_request(body: bytes) -> Work:
    """Read a body of native events: one object, an array of them, or JSON lines.

    A native event without `event_id` gets one now, so that a spooled copy is the same
    event (a client that retries must send its own). A line that is not valid JSON is a
    rejection of its own; a body that is an array must be valid JSON as a whole.
    """
    text = _text(body)
    stripped = text.strip()
    if not stripped:
        raise RequestError(400, "the body holds no events")
    if stripped.startswith("["):
        value = _decode(stripped, "the body")
        if not isinstance(value, list):  # pragma: no cover - a leading [ is an array
            raise RequestError(400, "the body is not a JSON array")
        if not value:
            raise RequestError(400, "the body holds no events")
        work = Work()
        for document in value:
            _add_native(work, document, None)
        return work
    if stripped.startswith("{") and "\n" not in stripped:
        work = Work(single=True)
        _add_line(work, stripped.encode())
        return work
    work = Work()
    for line in text.splitlines():
        if line.strip():
            _add_line(work, line.encode())
    work.single = len(work.documents) == 1
    return work


def lineage_request(body: bytes) -> Work:
    """Read one OpenLineage event as the OpenLineage HTTP transport posts it.

    A RunEvent becomes a candidate (or a rejection) by the contract's mapping; a
    DatasetEvent or JobEvent (no `run`) is kept whole for `raw.openlineage_other_events`.
    """
    text = _text(body).strip()
    if not text:
        raise RequestError(400, "the body holds no event")
    document = _decode(text, "the body")
    if not isinstance(document, Mapping):
        raise RequestError(
            400, f"expected an OpenLineage event (a JSON object), got {fields.json_type(document)}"
        )
    work = Work(single=True)
    if is_run_event(document):
        _add_native(work, document, text.encode(), assign_id=False)
        return work
    kind = _other_kind(document)
    try:
        fields.timestamp(document.get("eventTime"), "eventTime")
        payload = fields.attributes(document, kind)
    except BadEventError as error:
        raise RequestError(400, str(error)) from None
    assert payload is not None
    digest = hashlib.sha256(document_bytes(dict(sorted(payload.items())))).hexdigest()
    work.others.append(OtherEvent(derived_event_id("openlineage", kind, digest), kind, payload))
    return work


def _other_kind(document: Mapping[str, Any]) -> str:
    if isinstance(document.get("dataset"), Mapping):
        return "DatasetEvent"
    if isinstance(document.get("job"), Mapping) and "run" not in document:
        return "JobEvent"
    raise RequestError(
        400,
        "not an OpenLineage RunEvent (eventType, run, job), DatasetEvent (dataset) or"
        " JobEvent (job, no run); native events go to /api/v1/events",
    )


def _text(body: bytes) -> str:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RequestError(400, f"the body is not valid UTF-8 (byte {error.start})") from None
    return text.removeprefix("\ufeff")


def _decode(text: str, what: str) -> Any:
    try:
        return decode_document(text)
    except json.JSONDecodeError as error:
        message = error.msg.removesuffix(" at")
        raise RequestError(
            400, f"{what} is not valid JSON ({message} at line {error.lineno} column {error.colno})"
        ) from None
    except RecursionError:
        raise RequestError(400, f"{what}: JSON nested too deeply") from None
    except BadEventError as error:  # a duplicate key
        raise RequestError(400, f"{what}: {error}") from None
    except ValueError as error:  # e.g. an integer too long for Python to convert
        raise RequestError(400, f"{what} is not valid JSON ({error})") from None


def _add_line(work: Work, line: bytes) -> None:
    plain = decode_plain_line(line)
    if plain is not None and plain[0].get("event_id") is not None:
        # The usual post, checked in one pass. A line without its event_id takes the
        # general path below, which gives it one in the document the spool would keep.
        document, event = plain
        work.documents.append(document)
        work.candidates.append(Candidate(event, line, len(work.documents)))
        return
    try:
        document = _decode(line.decode(), "the line")
    except RequestError as error:
        number = len(work.documents) + 1
        work.documents.append({})
        reason = error.reason.removeprefix("the line is ").removeprefix("the line: ")
        work.rejections.append(Rejection(reason, line, number))
        return
    _add_native(work, document, line)


def _add_native(work: Work, document: object, raw: bytes | None, *, assign_id: bool = True) -> None:
    """Number a decoded event, give a native one its event_id, and validate it."""
    number = len(work.documents) + 1
    if (
        isinstance(document, Mapping)
        and assign_id
        and not is_run_event(document)
        and document.get("event_id") is None
    ):
        document = {**document, "event_id": str(new_event_id())}
        raw = None
    if raw is None:
        raw = document_bytes(document) if isinstance(document, Mapping) else _json_bytes(document)
    work.documents.append(document if isinstance(document, Mapping) else {})
    try:
        work.candidates.append(Candidate(parse_event(document), raw, number))
    except BadEventError as error:
        work.rejections.append(Rejection(str(error), raw, number))
    except RecursionError:
        work.rejections.append(Rejection("JSON nested too deeply", raw, number))


def _json_bytes(value: object) -> bytes:
    try:
        return json.dumps(value).encode()
    except (ValueError, RecursionError):
        return repr(value)[:1024].encode()


# ---- group commit -------------------------------------------------------------------------


@dataclass(slots=True)
class _Pending:
    work: Work
    future: asyncio.Future[Outcome]


class Collector:
    """One writer thread in front of one `Delivery`: requests in, outcomes out.

    `submit` is called on an event loop; the returned future is resolved on that loop once
    the request's events are committed or spooled (fsync'd), or with status 503 when neither
    could be done.
    """

    def __init__(self, settings: Settings, *, max_group_events: int = MAX_GROUP_EVENTS) -> None:
        self.settings = settings
        self.max_group_events = max_group_events
        self.totals = Totals()
        self.database_up: bool | None = None
        self._delivery = Delivery(settings, source=SOURCE)
        self._backoff = backoff_for(settings)
        self._other_spool = Spool(_other_folder(settings))
        self._queue: queue.SimpleQueue[_Pending | object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="ledger-collector", daemon=True)
        self._spool_waiting = True  # a previous collector may have left events there
        self._next_redelivery = 0.0

    def start(self) -> None:
        """Start the writer thread."""
        self._thread.start()

    def stop(self) -> None:
        """Store what is queued, then stop the writer thread and close the connection."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()
        self._delivery.close()

    def submit(self, work: Work) -> asyncio.Future[Outcome]:
        """Queue a request's events for the next group commit (from a running event loop)."""
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._queue.put(_Pending(work, future))
        return future

    def check(self) -> asyncio.Future[Outcome]:
        """Queue a health check: 200 when the database answers, 202 when only the spool can."""
        return self.submit(Work())

    @property
    def spool_waiting(self) -> bool:
        """Whether events may be waiting in the spool for the database."""
        return self._spool_waiting

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=REDELIVERY_SECONDS)
            except queue.Empty:
                self._redeliver_if_due()
                continue
            group: list[_Pending] = []
            stopping = first is _STOP
            if isinstance(first, _Pending):
                group.append(first)
            events = sum(item.work.received for item in group)
            while not stopping and events < self.max_group_events:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if isinstance(item, _Pending):
                    group.append(item)
                    events += item.work.received
                else:
                    stopping = True
            if group:
                self._store_group(group)
            if stopping:
                return
            self._redeliver_if_due()

    def _store_group(self, group: Sequence[_Pending]) -> None:
        try:
            outcomes = self._store(group)
        except Exception:  # noqa: BLE001  # one bad request must not hold the others hostage
            logger.warning("a group commit of %d requests failed; storing each alone", len(group))
            outcomes = []
            for item in group:
                try:
                    outcomes.extend(self._store([item]))
                except Exception as error:  # noqa: BLE001  # answered, logged, never a crash
                    outcomes.append(_failure(item.work, error))
        answers: dict[asyncio.AbstractEventLoop, list[tuple[_Pending, Outcome]]] = {}
        for item, outcome in zip(group, outcomes, strict=True):
            answers.setdefault(item.future.get_loop(), []).append((item, outcome))
        for loop, answered in answers.items():
            try:
                loop.call_soon_threadsafe(_settle, answered)
            except RuntimeError:  # the loop closed first: stored, but no one is waiting
                logger.debug("%d requests stored after their event loop closed", len(answered))

    def _store(self, group: Sequence[_Pending]) -> list[Outcome]:
        """Store a group's events in one transaction; return each request's outcome."""
        documents: list[Mapping[str, Any]] = []
        candidates: list[Candidate] = []
        rejections: list[Rejection] = []
        others: list[OtherEvent] = []
        offsets: list[int] = []
        for item in group:
            offset = len(documents)
            offsets.append(offset)
            documents.extend(item.work.documents)
            candidates.extend(_renumbered(item.work.candidates, offset))
            rejections.extend(_renumbered(item.work.rejections, offset))
            others.extend(item.work.others)
        result = LoadResult(rejections=list(rejections))
        if candidates or rejections:
            result = self._delivery.write(documents, candidates, rejections)
        elif self._backoff.remaining() == 0:
            self._ping()
        down = bool(result.spooled) or self._backoff.remaining() > 0
        if down and not others and not candidates:
            self.database_up = False
        others_spooled, others_lost = self._store_others(others, database_down=down)
        lost = len(candidates) - (
            result.accepted
            + result.duplicates
            + result.parked
            + result.spooled
            + (result.rejected - len(rejections))
        )
        lost = max(lost, 0)
        if result.spooled or others_spooled:
            self._spool_waiting = True
        with self.totals.lock:
            self.totals.groups += 1
            self.totals.accepted += result.accepted
            self.totals.duplicates += result.duplicates
            self.totals.rejected += result.rejected
            self.totals.parked += result.parked
            self.totals.spooled += result.spooled + others_spooled
            self.totals.other_events += len(others) - others_lost
            self.totals.lost += lost + others_lost
        if lost or others_lost:
            return [Outcome(503, item.work.received, reasons=[_LOST]) for item in group]
        return self._outcomes(
            group, offsets, result.rejections, spooled=bool(result.spooled or others_spooled)
        )

    def _outcomes(
        self,
        group: Sequence[_Pending],
        offsets: Sequence[int],
        rejections: Sequence[Rejection],
        *,
        spooled: bool,
    ) -> list[Outcome]:
        """Each request's outcome: its rejections, found by their number in the group."""
        by_request: list[list[Rejection]] = [[] for _ in group]
        for rejection in rejections:
            index = bisect.bisect_right(offsets, (rejection.line_number or 1) - 1) - 1
            by_request[index].append(rejection)
        outcomes = []
        for item, offset, rejected in zip(group, offsets, by_request, strict=True):
            work = item.work
            reasons = [_reason(rejection, offset, single=work.single) for rejection in rejected]
            stored = work.received - len(rejected)
            status = 200
            if work.received and not stored:
                status = 400
            elif spooled if work.received else self.database_up is False:
                status = 202
            outcome = Outcome(status, work.received, stored, len(rejected), reasons=reasons)
            if status == 202:
                outcome.spooled = stored
            outcomes.append(outcome)
        return outcomes

    def _ping(self) -> None:
        try:
            with database_errors("the ledger's database failed"):
                self._delivery.connection().execute("select 1")
            self.database_up = True
        except TransientError:
            self._delivery.close()
            self.database_up = False

    def _store_others(
        self, others: Sequence[OtherEvent], *, database_down: bool
    ) -> tuple[int, int]:
        """Insert DatasetEvents and JobEvents; spool them when the database is down.

        Return how many were spooled and how many were lost (neither stored nor spooled).
        """
        if not others:
            return 0, 0
        if not database_down:
            try:
                inserted = self._insert_others(others)
            except TransientError:
                self._delivery.close()
            else:
                with self.totals.lock:
                    self.totals.duplicates += len(others) - inserted
                self.database_up = True
                return 0, 0
        self.database_up = False
        envelopes = [
            {"event_id": str(other.event_id), "kind": other.kind, "payload": other.payload}
            for other in others
        ]
        if self._other_spool.append(envelopes):
            return len(others), 0
        return 0, len(others)

    def _insert_others(self, others: Sequence[OtherEvent]) -> int:
        with database_errors("the ledger's database failed"):
            conn = self._delivery.connection()
            params = [
                [other.event_id for other in others],
                [other.kind for other in others],
                [json.dumps(other.payload) for other in others],
            ]
            try:
                return conn.execute(_INSERT_OTHER, params).rowcount
            except psycopg.errors.UndefinedTable:
                # A database made before the collector existed: add the table (init's
                # rights needed; a ledger_loader login gets a clear error instead).
                create_raw_schema(conn)
                return conn.execute(_INSERT_OTHER, params).rowcount

    def _redeliver_if_due(self) -> None:
        """Deliver the spools while they may hold events, every REDELIVERY_SECONDS."""
        if not self._spool_waiting or time.monotonic() < self._next_redelivery:
            return
        self._next_redelivery = time.monotonic() + REDELIVERY_SECONDS
        try:
            result = self._delivery.flush()
            for path in spool_files(self._other_spool.directory):
                deliver_file(path, self._deliver_others)
        except (LedgerError, OSError, psycopg.Error) as error:
            self._delivery.close()
            self.database_up = False
            logger.debug("the spool waits for the database: %s", error)
            return
        self.database_up = True
        with self.totals.lock:
            self.totals.accepted += result.accepted
            self.totals.duplicates += result.duplicates
            self.totals.rejected += result.rejected
            self.totals.parked += result.parked
        if result.accepted or result.duplicates or result.rejected:
            logger.warning(
                "delivered spooled events: %d new, %d duplicates, %d rejected",
                result.accepted,
                result.duplicates,
                result.rejected,
            )
        self._spool_waiting = bool(
            database_spool_files(self.settings) or spool_files(self._other_spool.directory)
        )

    def _deliver_others(self, stream: BinaryIO, source: str) -> None:
        others = []
        for line in stream:
            try:
                envelope = json.loads(line)
                others.append(
                    OtherEvent(
                        uuid.UUID(envelope["event_id"]), envelope["kind"], envelope["payload"]
                    )
                )
            except (ValueError, KeyError, TypeError):
                logger.warning("skipping a torn line of %s", source)
        if others:
            self._insert_others(others)


def _other_folder(settings: Settings) -> Path:
    """Beside the database's spool folder: `ledger flush` and Delivery never read it."""
    folder = database_folder(settings)
    return folder.with_name(folder.name + ".openlineage-other")


def _settle(answered: Sequence[tuple[_Pending, Outcome]]) -> None:
    for item, outcome in answered:
        if not item.future.done():  # a request cancelled when its client went away
            item.future.set_result(outcome)


def _renumbered(items: Sequence[Any], offset: int) -> list[Any]:
    return [
        dataclasses.replace(item, line_number=(item.line_number or 0) + offset) for item in items
    ]


def _reason(rejection: Rejection, offset: int, *, single: bool) -> str:
    if single:
        return rejection.reason
    return f"event {(rejection.line_number or 0) - offset}: {rejection.reason}"


def _failure(work: Work, error: Exception) -> Outcome:
    if isinstance(error, psycopg.errors.DataError | psycopg.errors.ProgramLimitExceeded):
        message = (error.diag.message_primary or str(error)).splitlines()[0][:300]
        return Outcome(
            400,
            work.received,
            rejected=work.received,
            reasons=[f"refused by the database: {message}"],
        )
    logger.error("could not store a request's events", exc_info=error)
    return Outcome(
        503,
        work.received,
        reasons=[f"the collector could not store the events ({type(error).__name__})"],
    )


def spool_folders(settings: Settings) -> list[Path]:
    """The folders the collector spools to for `settings`' database."""
    return [database_folder(settings), _other_folder(settings)]


__all__ = [
    "Collector",
    "Outcome",
    "RequestError",
    "Work",
    "lineage_request",
    "native_request",
    "spool_folders",
]
