"""Bulk load of JSON-lines files: validate each line, write in batches, report per line.

Memory is bounded whatever the input: a line is read up to the cap (`max_line_bytes`,
`LEDGER_MAX_LINE_BYTES`) and a line over it is quarantined with only its first bytes; a
batch ends at `batch_lines` lines or `batch_bytes` bytes, and is written while the next
one is checked; with a `report`, a batch's rejections go to it once the batch has landed,
and are not kept. A value the database refuses (one the contract lets through) costs only
its line: the batch is split until the refused lines are alone, and they are quarantined
with the database's message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from typing import BinaryIO

import psycopg

from loader.batch import Candidate, LoadResult, Rejection, validate
from loader.bulk_copy import copy_plain_rows
from loader.connection import Connection
from loader.contract import DEFAULT_PARKED_MAX_AGE
from loader.events import parse_line
from loader.plain_rows import PlainRows, events, plain_rows
from loader.settings import DEFAULT_MAX_LINE_BYTES
from loader.writer import PIPELINED_BATCH_LIMIT, write_batch

BATCH_LINES = 20000
BATCH_BYTES = 8 * 1024 * 1024
PREVIEW_BYTES = 1024
"""What the quarantine keeps of a line over the cap: its first bytes, never the whole."""
_SKIP_CHUNK = 64 * 1024
# What the database raises for a value it cannot store: class 22 (data exception: bad
# jsonb, a character the database encoding lacks), class 54 (a value over its limits);
# psycopg raises UnicodeEncodeError when the connection's encoding lacks a character.
_REFUSALS = (psycopg.errors.DataError, psycopg.errors.ProgramLimitExceeded, UnicodeEncodeError)


def ingest_stream(
    conn: Connection,
    stream: BinaryIO,
    *,
    source: str,
    batch_lines: int = BATCH_LINES,
    parked_max_age: float = DEFAULT_PARKED_MAX_AGE,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    batch_bytes: int = BATCH_BYTES,
    report: Callable[[Rejection], None] | None = None,
    more_connections: Sequence[Connection] = (),
) -> LoadResult:
    """Load every line of `stream` in batches; blank lines are skipped.

    A line over `max_line_bytes` (its newline not counted) is quarantined with its first
    PREVIEW_BYTES bytes. Each batch's rejections go to `report`, in line order, once the
    batch has landed; the result then counts them (`reported`) without keeping them, and
    memory stays bounded by two batches (one written while the next is checked) and one
    line, whatever the input. Without `report` the result keeps every rejection.

    With `more_connections`, a batch of plain lines is split by run between the
    connections and its parts are copied side by side (one server process each); a part
    that needs the full path takes it once the others have landed.
    """
    total = LoadResult()
    lines = _numbered_lines(stream, max_line_bytes)
    connections = [conn, *more_connections]
    # The database writes a batch while this thread reads and checks the next: one batch
    # in flight, so memory holds two batches and batches land in the file's order.
    with ExitStack() as stack:
        writers = [
            stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="ledger-ingest"))
            for _ in connections
        ]
        writing: list[_Part] = []
        while batch := _next_batch(lines, batch_lines, batch_bytes):
            parts = _parts(batch, connections, source=source, parked_max_age=parked_max_age)
            del batch
            total.add(_reported(_landed(writing), report))
            for part in parts:
                part.future = writers[part.lane].submit(part.write)
            writing = parts
        total.add(_reported(_landed(writing), report))
    return total


@dataclass
class _Part:
    """A batch's part for one connection (`lane`, its index): a write in that connection's
    thread, and what to do after it when that write hands the part back (the full path,
    run once the batch's other parts have landed: a part that needs it may wait on what
    another part holds)."""

    lane: int
    write: Callable[[], LoadResult | None]
    full_path: Callable[[], LoadResult] | None = None
    future: Future[LoadResult | None] | None = None


def _parts(
    batch: list[tuple[int, bytes, str | None]],
    connections: Sequence[Connection],
    *,
    source: str,
    parked_max_age: float,
) -> list[_Part]:
    """The batch as parts: plain lines split by run across the connections, else one
    part that the Python way checks and writes on the first connection."""
    rows = _plain_rows(batch)
    if rows is None:
        candidates, rejections = validate(
            ((n, line, line) for n, line, over in batch if over is None), parse_line
        )
        rejections.extend(Rejection(over, line, n) for n, line, over in batch if over)
        rejections.sort(key=lambda rejection: rejection.line_number or 0)
        return [
            _Part(
                0,
                partial(
                    _write_isolating,
                    connections[0],
                    candidates,
                    rejections,
                    source=source,
                    parked_max_age=parked_max_age,
                ),
            )
        ]
    split = [
        (lane, connection, part, positions)
        for lane, (connection, (part, positions)) in enumerate(
            zip(connections, rows.partition(len(connections)), strict=True)
        )
        if len(part)
    ]
    return [
        _Part(
            lane,
            partial(_copy_plain, connection, part, parked_max_age, expire_parked=index == 0),
            partial(
                _full_path,
                connection,
                part,
                [batch[position] for position in positions],
                source=source,
                parked_max_age=parked_max_age,
            ),
        )
        for index, (lane, connection, part, positions) in enumerate(split)
    ]


def _landed(parts: Sequence[_Part]) -> LoadResult:
    """Wait for a batch's parts, then take the full path for those that need it.

    A part that failed raises here; `ingest_stream` lets the batch's other parts finish
    before the error leaves it (their writers shut down waiting), and what they stored stays.
    """
    outcomes = [part.future.result() if part.future else None for part in parts]
    result = LoadResult()
    for part, outcome in zip(parts, outcomes, strict=True):
        if outcome is not None:
            result.add(outcome)
        else:
            assert part.full_path is not None  # only a copy hands a part back
            result.add(part.full_path())
    result.rejections.sort(key=lambda rejection: rejection.line_number or 0)
    return result


def _reported(result: LoadResult, report: Callable[[Rejection], None] | None) -> LoadResult:
    """Hand a landed batch's rejections to `report`, keeping only their count."""
    if report is not None:
        for rejection in result.rejections:
            report(rejection)
        result.reported += len(result.rejections)
        result.rejections = []
    return result


def _next_batch(
    lines: Iterator[tuple[int, bytes, str | None]], batch_lines: int, batch_bytes: int
) -> list[tuple[int, bytes, str | None]]:
    batch: list[tuple[int, bytes, str | None]] = []
    size = 0
    for item in lines:
        batch.append(item)
        size += len(item[1])
        if len(batch) >= batch_lines or size >= batch_bytes:
            break
    return batch


def _numbered_lines(
    stream: BinaryIO, max_line_bytes: int
) -> Iterator[tuple[int, bytes, str | None]]:
    """Yield (line number, content, None), or (number, first bytes, reason) for a line over.

    Never holds more than one line of `max_line_bytes` (and its newline) in memory.
    """
    number = 0
    # The cap, a CRLF, and no more: a longer read without its newline is over the cap.
    limit = max_line_bytes + 2
    while chunk := stream.readline(limit):
        number += 1
        ends = chunk.endswith(b"\n") or len(chunk) < limit  # the line's end, or the file's
        content = chunk.rstrip(b"\r\n") if ends else chunk
        del chunk
        if ends and len(content) <= max_line_bytes:
            if content.strip():
                yield number, content, None
            continue
        size = len(content) if ends else len(content) + _skip_rest_of_line(stream)
        yield (
            number,
            content[:PREVIEW_BYTES],
            (
                f"line of {size} bytes is over the limit of {max_line_bytes} bytes"
                f" (LEDGER_MAX_LINE_BYTES); only its first {PREVIEW_BYTES} bytes are kept"
            ),
        )


def _skip_rest_of_line(stream: BinaryIO) -> int:
    """Read past the end of the current line a chunk at a time; return the bytes skipped."""
    skipped = 0
    while chunk := stream.readline(_SKIP_CHUNK):
        if chunk.endswith(b"\n"):
            return skipped + len(chunk.rstrip(b"\r\n"))
        skipped += len(chunk)
    return skipped


def _plain_rows(batch: Sequence[tuple[int, bytes, str | None]]) -> PlainRows | None:
    """A bulk batch of plain lines, checked in compiled code; None: the Python way decides."""
    if len(batch) <= PIPELINED_BATCH_LIMIT or any(over for _, _, over in batch):
        return None
    return plain_rows(line for _, line, _ in batch)


def _copy_plain(
    conn: Connection, rows: PlainRows, parked_max_age: float, *, expire_parked: bool
) -> LoadResult | None:
    """Copy a part the compiled check read; None when it needs the full path after all (a
    run to park, a name that differs, a value refused). Only the first part of a batch
    expires parked events (`copy_plain_rows`)."""
    try:
        with conn.transaction():
            copied = copy_plain_rows(conn, rows, parked_max_age, expire_parked=expire_parked)
    except _REFUSALS:
        return None  # the full path isolates the lines the database refuses
    return None if copied is None else LoadResult(accepted=copied)


def _full_path(
    conn: Connection,
    rows: PlainRows,
    numbered: Sequence[tuple[int, bytes, str | None]],
    *,
    source: str,
    parked_max_age: float,
) -> LoadResult:
    """The full path for a part the compiled check read, with its rows' Events."""
    candidates = [
        Candidate(event, line, number)
        for event, (number, line, _) in zip(events(rows), numbered, strict=True)
    ]
    return _write_isolating(conn, candidates, [], source=source, parked_max_age=parked_max_age)


def _write_isolating(
    conn: Connection,
    candidates: Sequence[Candidate],
    rejections: Sequence[Rejection],
    *,
    source: str,
    parked_max_age: float,
) -> LoadResult:
    """Write a batch; if the database refuses a value, isolate the lines it refuses.

    A refused batch is rolled back whole and split in halves, again and again, until each
    refused line is alone: it is then quarantined with the database's message, and every
    other line lands. Bad lines are rare, so the cost is a few more round trips.
    """

    def write(part: Sequence[Candidate], rejected: Sequence[Rejection]) -> LoadResult:
        return _write_isolating(conn, part, rejected, source=source, parked_max_age=parked_max_age)

    try:
        return write_batch(
            conn, candidates, rejections, source=source, parked_max_age=parked_max_age
        )
    except _REFUSALS as error:
        refusal = error
    if candidates and rejections:
        result = write([], rejections)
        result.add(write(candidates, []))
    elif len(candidates) > 1:
        half = len(candidates) // 2
        result = write(candidates[:half], [])
        result.add(write(candidates[half:], []))
    elif len(rejections) > 1:
        half = len(rejections) // 2
        result = write([], rejections[:half])
        result.add(write([], rejections[half:]))
    elif candidates:
        candidate = candidates[0]
        reason = f"refused by the database: {_refusal_message(refusal)}"
        result = write([], [Rejection(reason, candidate.raw, candidate.line_number)])
    else:
        # A lone rejection refused: its reason holds a character the database encoding
        # lacks. Its raw bytes are stored as bytea, so an ASCII reason stores it.
        rejection = rejections[0]
        reason = _ascii(rejection.reason)
        if reason == rejection.reason:
            raise refusal
        result = write([], [Rejection(reason, rejection.raw, rejection.line_number)])
    result.rejections.sort(key=lambda item: item.line_number or 0)
    return result


def _refusal_message(error: Exception) -> str:
    message = str(error)
    if isinstance(error, psycopg.Error) and error.diag.message_primary:
        message = error.diag.message_primary
    message = _ascii(message.strip().splitlines()[0] if message.strip() else type(error).__name__)
    return message if len(message) <= 300 else message[:297] + "..."


def _ascii(text: str) -> str:
    """Text any database encoding can hold: non-ASCII characters as escapes."""
    return text.encode("ascii", "backslashreplace").decode("ascii")
