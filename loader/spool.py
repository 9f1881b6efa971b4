"""The durable local spool: events that could not reach the database, kept until delivered.

One JSON-lines file per process, appended and fsync'd under an exclusive lock. Files are
named by creation time, so delivering them in name order replays events in the order
they were recorded (a run's start before its stages). Delivery is idempotent because
every spooled event already carries its `event_id`.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from loader.events import document_bytes

logger = logging.getLogger(__name__)

SUFFIX = ".jsonl"


class Spool:
    """This process's spool file in `directory`, created on the first append."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        name = f"{time.time_ns():020d}-{socket.gethostname()}-{os.getpid()}{SUFFIX}"
        self.path = directory / name

    def append(self, documents: Sequence[Mapping[str, Any]]) -> None:
        """Append events durably: written, flushed and fsync'd before this returns."""
        self.directory.mkdir(parents=True, exist_ok=True)
        payload = b"".join(document_bytes(document) + b"\n" for document in documents)
        is_new = not self.path.exists()
        while True:
            with self.path.open("ab") as stream, _locked(stream):
                # A flush may have delivered and unlinked the file while we waited for
                # the lock; writing to the unlinked file would lose the events.
                if os.fstat(stream.fileno()).st_nlink == 0:
                    continue
                stream.write(payload)
                stream.flush()
                os.fsync(stream.fileno())
                break
        if is_new:
            _fsync_directory(self.directory)

    def has_events(self) -> bool:
        """Tell whether this process has spooled events not yet delivered."""
        return self.path.exists() and self.path.stat().st_size > 0

    def deliver(self, send: Callable[[BinaryIO, str], object]) -> bool:
        """Deliver this process's file (see `deliver_file`)."""
        return deliver_file(self.path, send)


def spool_files(directory: Path) -> list[Path]:
    """Return the spool files in `directory`, oldest first."""
    if not directory.is_dir():
        return []
    return sorted(path for path in directory.iterdir() if path.name.endswith(SUFFIX))


def deliver_file(path: Path, send: Callable[[BinaryIO, str], object]) -> bool:
    """Send a spool file's lines with `send(stream, source)`, then delete the file.

    Return False, leaving the file, when another process holds it (it is appending).
    If `send` raises, the file stays for the next attempt: events delivered before the
    failure are delivered again then and count once, by their event_id.
    """
    try:
        stream = path.open("rb")
    except FileNotFoundError:
        return True  # delivered by another process meanwhile
    with stream:
        try:
            fcntl.flock(stream, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        if not path.exists():
            return True
        send(stream, f"spool:{path.name}")
        path.unlink()
    _fsync_directory(path.parent)
    return True


@contextmanager
def _locked(stream: BinaryIO) -> Iterator[None]:
    fcntl.flock(stream, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(stream, fcntl.LOCK_UN)


def _fsync_directory(directory: Path) -> None:
    # A new or removed file name is durable only once its directory is synced.
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
