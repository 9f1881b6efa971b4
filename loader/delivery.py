"""Delivery: how a Ledger's events reach the database, and what happens when they cannot.

One connection per Delivery, opened lazily and reopened when it breaks; the raw schema is
created on first use. When the database is unreachable or fails mid-call, events go to
this process's durable spool (one warning per outage) and the next successful write
delivers the spool first. With `strict` settings the TransientError propagates instead.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, BinaryIO

from loader import connection
from loader.batch import Candidate, LoadResult, Rejection
from loader.connection import Connection, database_errors
from loader.errors import TransientError
from loader.ingest import ingest_stream
from loader.schema import create_raw_schema, raw_schema_exists
from loader.settings import Settings
from loader.spool import Spool, deliver_file, spool_files
from loader.writer import write_batch

logger = logging.getLogger(__name__)

_FAILED = "the ledger's database failed"


class Delivery:
    """A connection to the ledger's database with a spool behind it."""

    def __init__(self, settings: Settings, *, source: str) -> None:
        self.settings = settings
        self.source = source
        self._conn: Connection | None = None
        self._spool = Spool(settings.spool_dir)
        self._outage: str | None = None

    def close(self) -> None:
        """Close the connection; the next call opens a new one."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def connection(self) -> Connection:
        """Return the open connection, (re)connecting and creating the raw schema if needed."""
        if self._conn is None or self._conn.closed or self._conn.broken:
            self.settings = connection.resolve(self.settings)
            conn = connection.open_connection(self.settings, autocommit=True)
            try:
                with database_errors(_FAILED):
                    if not raw_schema_exists(conn):
                        create_raw_schema(conn)
            except TransientError:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def write(
        self,
        documents: Sequence[Mapping[str, Any]],
        candidates: Sequence[Candidate],
        rejections: Sequence[Rejection],
    ) -> LoadResult:
        """Write a validated batch; during an outage spool its documents and return.

        `documents` are the batch as given (identity and time already fixed), so that the
        spooled copy is the same events.
        """
        try:
            with database_errors(_FAILED):
                conn = self.connection()
                if self._spool.has_events():
                    self._spool.deliver(self._ingest)
                result = write_batch(conn, candidates, rejections, source=self.source)
        except TransientError as error:
            self.close()
            if self.settings.strict:
                raise
            self._spool_documents(documents, error)
            return LoadResult(spooled=len(documents), rejections=list(rejections))
        if self._outage is not None:
            logger.warning("the ledger's database is back; spooled events were delivered")
            self._outage = None
        return result

    def flush(self) -> LoadResult:
        """Deliver every spool file in the spool folder (other processes' too), oldest first.

        Files that another process is appending to right now are left for later.
        """
        total = LoadResult()
        for path in spool_files(self.settings.spool_dir):
            deliver_file(path, lambda stream, source: total.add(self._ingest(stream, source)))
        return total

    def pipeline_id(self, run_key: str) -> int | None:
        """Return the integer id registered for `run_key`, or None when there is none."""
        with database_errors(_FAILED):
            row = (
                self.connection()
                .execute("select pipeline_id from raw.runs where run_key = %s", [run_key])
                .fetchone()
            )
        return None if row is None else int(row[0])

    def _ingest(self, stream: BinaryIO, source: str) -> LoadResult:
        return ingest_stream(self.connection(), stream, source=source)

    def _spool_documents(self, documents: Sequence[Mapping[str, Any]], error: Exception) -> None:
        self._spool.append(documents)
        if self._outage is None:
            logger.warning(
                "the ledger's database is unreachable (%s); spooling events to %s",
                str(error).strip(),
                self._spool.path,
            )
        self._outage = str(error)
