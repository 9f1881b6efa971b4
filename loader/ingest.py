"""Bulk load of JSON-lines files: validate each line, write in batches, report per line."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from typing import BinaryIO

from loader.batch import LoadResult, validate
from loader.connection import Connection
from loader.events import parse_line
from loader.writer import write_batch

BATCH_LINES = 10_000


def ingest_stream(
    conn: Connection,
    stream: BinaryIO,
    *,
    source: str,
    batch_lines: int = BATCH_LINES,
) -> LoadResult:
    """Load every line of `stream`, `batch_lines` at a time; blank lines are skipped.

    Memory stays bounded by one batch whatever the size of the input.
    """
    total = LoadResult()
    numbered = _numbered_lines(stream)
    while batch := list(islice(numbered, batch_lines)):
        candidates, rejections = validate(((n, line, line) for n, line in batch), parse_line)
        total.add(write_batch(conn, candidates, rejections, source=source))
    return total


def _numbered_lines(stream: BinaryIO) -> Iterator[tuple[int, bytes]]:
    for number, line in enumerate(stream, start=1):
        content = line.rstrip(b"\r\n")
        if content.strip():
            yield number, content
