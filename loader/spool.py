"""The durable local spool: events that could not reach the database, kept until delivered.

Each database has a folder of its own in the spool folder (`database_folder`): events wait
for the database they were meant for, and a process delivers only its own database's
folder. In it, one JSON-lines file per process, appended and fsync'd under an exclusive
lock. Files are named by creation time, so delivering them in name order replays events in
the order they were recorded (a run's start before its stages). Delivery is idempotent
because every spooled event already carries its `event_id`.

Spooled events may hold secrets (error messages), and a spool file is fed to the database,
so the spool trusts nothing it did not make: folders are 0700 and files 0600 whatever the
umask, and a symlink, a file that is not a regular file, or one owned by another user is
refused. A spool that cannot be written (read-only, full disk, refused) never raises into
the job: the events are logged at error level, as lost. A torn append (a process killed
mid-write) stays a line of its own, which delivery quarantines.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import socket
import stat
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from loader.events import document_bytes
from loader.settings import Settings

logger = logging.getLogger(__name__)

SUFFIX = ".jsonl"
TARGET_FILE = "database.json"
"""In each database's folder: which database its events are for, for people to read."""
FOLDER_MODE = 0o700
FILE_MODE = 0o600
# How many lost events an error message lists one by one.
_LISTED_LOST = 20


class UnsafeSpoolError(PermissionError):
    """A spool folder or file is not one this user made: a symlink, another's, not a file."""


def database_folder(settings: Settings) -> Path:
    """Return the folder in `settings.spool_dir` for the events of `settings`' database.

    A database is its host, port and name (the embedded server: its data folder and the
    name, whatever port it listens on). The folder's name is readable, and a hash of the
    exact identity keeps two databases apart even when their readable parts look alike.
    """
    if settings.names_embedded_server:
        identity = ["embedded", str(settings.embedded_dir.resolve()), "", settings.dbname]
        readable = f"embedded-{settings.dbname}"
    else:
        host = settings.host or ""
        if host.startswith("/"):  # a unix-socket folder: one spelling per folder
            host = os.path.normpath(host)
        identity = ["server", host, str(settings.port), settings.dbname]
        readable = f"{host}-{settings.port}-{settings.dbname}"
    digest = hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:32]
    slug = re.sub(r"[^A-Za-z0-9.-]+", "_", readable).strip("_.")[:80]
    return settings.spool_dir / f"{slug}-{digest}"


def database_spool_files(settings: Settings) -> list[Path]:
    """Return the spool files waiting for `settings`' database, oldest first.

    Files directly in the spool folder predate per-database folders: nothing says which
    database they are for, so they are left where they are, with a warning.
    """
    unknown = spool_files(settings.spool_dir)
    if unknown:
        logger.warning(
            "%d spool files in %s do not say which database they are for; they are left"
            " there: move each into the folder of its database (%s for this one) to deliver it",
            len(unknown),
            settings.spool_dir,
            database_folder(settings).name,
        )
    return spool_files(database_folder(settings))


class Spool:
    """This process's spool file in `directory` (a database's folder), made on first append."""

    def __init__(self, directory: Path, *, target: Mapping[str, object] | None = None) -> None:
        self.directory = directory
        self.target = target
        name = f"{time.time_ns():020d}-{socket.gethostname()}-{os.getpid()}{SUFFIX}"
        self.path = directory / name

    @classmethod
    def for_database(cls, settings: Settings) -> Spool:
        """Return a new spool file for this process in the folder of `settings`' database."""
        target = {"host": settings.host, "port": settings.port, "dbname": settings.dbname}
        if settings.names_embedded_server:
            target = {"embedded_dir": str(settings.embedded_dir), "dbname": settings.dbname}
        return cls(database_folder(settings), target=target)

    def append(self, documents: Sequence[Mapping[str, Any]]) -> bool:
        """Append events durably: written, flushed and fsync'd before this returns True.

        When the spool cannot take them (unwritable or unsafe folder, full disk), log the
        events as lost at error level and return False: the job goes on.
        """
        payload = b"".join(document_bytes(document) + b"\n" for document in documents)
        try:
            self._append(payload)
        except OSError as error:
            _log_lost(documents, self.path, error)
            return False
        return True

    def has_events(self) -> bool:
        """Tell whether this process has spooled events not yet delivered."""
        try:
            return self.path.lstat().st_size > 0
        except OSError:
            return False

    def deliver(self, send: Callable[[BinaryIO, str], object]) -> bool:
        """Deliver this process's file (see `deliver_file`)."""
        return deliver_file(self.path, send)

    def _append(self, payload: bytes) -> None:
        folder = _open_spool_folder(self.directory, self.target)
        try:
            while True:
                descriptor = _open_spool_file(self.path, folder)
                try:
                    _check_own(descriptor, self.path, regular=True, mode=FILE_MODE)
                    fcntl.flock(descriptor, fcntl.LOCK_EX)
                    # A flush may have delivered and unlinked the file while we waited for
                    # the lock; writing to the unlinked file would lose the events.
                    if os.fstat(descriptor).st_nlink == 0:
                        continue
                    size = os.fstat(descriptor).st_size
                    _write_line(descriptor, payload, size)
                finally:
                    os.close(descriptor)  # releases the lock
                if size == 0:
                    os.fsync(folder)  # a new file's name is durable once its folder is synced
                return
        finally:
            os.close(folder)


def spool_files(directory: Path) -> list[Path]:
    """Return the spool files in `directory`, oldest first.

    Only regular files count: a directory, FIFO, socket or symlink named like a spool file
    is skipped with a warning (reading a FIFO would hang, a symlink could point anywhere).
    """
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return []
    files = []
    for entry in entries:
        if not entry.name.endswith(SUFFIX):
            continue
        if entry.is_file(follow_symlinks=False):
            files.append(Path(entry.path))
        else:
            logger.warning("skipping %s in the spool: not a regular file", entry.path)
    return sorted(files)


def deliver_file(path: Path, send: Callable[[BinaryIO, str], object]) -> bool:
    """Send a spool file's lines with `send(stream, source)`, then delete the file.

    Return False, leaving the file, when another process holds it (it is appending), or
    when it is not safe to read (a symlink, not a regular file, another user's, unreadable:
    skipped with a warning). If `send` raises, the file stays for the next attempt: events
    delivered before the failure are delivered again then and count once, by their event_id.
    """
    try:
        # O_NONBLOCK: opening a FIFO put in the file's place must not wait for a writer.
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return True  # delivered by another process meanwhile
    except OSError as error:
        logger.warning("skipping %s in the spool: %s", path, _why(error))
        return False
    with os.fdopen(descriptor, "rb") as stream:
        try:
            _check_own(descriptor, path, regular=True)
        except UnsafeSpoolError as error:
            logger.warning("skipping %s in the spool: %s", path, error)
            return False
        try:
            fcntl.flock(stream, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        if os.fstat(descriptor).st_nlink == 0:
            return True  # delivered and removed by another process while we opened it
        send(stream, f"spool:{path.name}")
        path.unlink()
    _fsync_directory(path.parent)
    return True


def _open_spool_folder(directory: Path, target: Mapping[str, object] | None) -> int:
    """Create the spool folder and `directory` in it (0700, ours); return `directory` open.

    The spool folder itself may be a symlink its owner made; a database's folder in it is
    opened without following one.
    """
    top = directory.parent
    top.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    top_descriptor = _open_directory(str(top), follow=True)
    try:
        _check_own(top_descriptor, top, regular=False, mode=FOLDER_MODE)
        try:
            os.mkdir(directory.name, FOLDER_MODE, dir_fd=top_descriptor)
            is_new = True
        except FileExistsError:
            is_new = False
        descriptor = _open_directory(directory.name, follow=False, dir_fd=top_descriptor)
        if is_new:
            os.fsync(top_descriptor)
    finally:
        os.close(top_descriptor)
    try:
        _check_own(descriptor, directory, regular=False, mode=FOLDER_MODE)
        if is_new and target is not None:
            _write_target(descriptor, target)
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def _open_directory(name: str, *, follow: bool, dir_fd: int | None = None) -> int:
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        return os.open(name, flags, dir_fd=dir_fd)
    except OSError as error:
        if error.errno in {errno.ELOOP, errno.ENOTDIR}:
            raise UnsafeSpoolError(f"{name} is a symlink or not a folder") from None
        raise


def _open_spool_file(path: Path, folder: int) -> int:
    try:
        return os.open(
            path.name,
            os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
            FILE_MODE,
            dir_fd=folder,
        )
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise UnsafeSpoolError(f"{path} is a symlink") from None
        raise


def _write_target(folder: int, target: Mapping[str, object]) -> None:
    descriptor = os.open(
        TARGET_FILE,
        os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
        FILE_MODE,
        dir_fd=folder,
    )
    try:
        os.fchmod(descriptor, FILE_MODE)
        os.write(descriptor, json.dumps(dict(target), default=str).encode() + b"\n")
    finally:
        os.close(descriptor)


def _check_own(descriptor: int, path: Path, *, regular: bool, mode: int | None = None) -> None:
    """Refuse what another user owns, or a non-file; tighten our own to `mode`."""
    status = os.fstat(descriptor)
    kind_ok = stat.S_ISREG(status.st_mode) if regular else stat.S_ISDIR(status.st_mode)
    if not kind_ok:
        raise UnsafeSpoolError(f"{path} is not a {'regular file' if regular else 'folder'}")
    if status.st_uid != os.geteuid():
        raise UnsafeSpoolError(f"{path} is owned by uid {status.st_uid}, not by this user")
    if mode is not None and stat.S_IMODE(status.st_mode) != mode:
        os.fchmod(descriptor, mode)  # whatever the umask, or an older, looser spool


def _write_line(descriptor: int, payload: bytes, size: int) -> None:
    """Append `payload` on a line of its own; on failure, take back what was written."""
    if size and os.pread(descriptor, 1, size - 1) != b"\n":
        # A torn append (a writer killed mid-line): start on a fresh line, so the torn
        # fragment stays a line of its own instead of gluing onto our first event.
        payload = b"\n" + payload
    try:
        view = memoryview(payload)
        while view:
            view = view[os.write(descriptor, view) :]
        os.fsync(descriptor)
    except OSError:
        try:
            os.ftruncate(descriptor, size)
        except OSError:
            logger.exception("could not remove a partial append from the spool")
        raise


def _log_lost(documents: Sequence[Mapping[str, Any]], path: Path, error: OSError) -> None:
    listed = [_describe(document) for document in documents[:_LISTED_LOST]]
    if len(documents) > _LISTED_LOST:
        listed.append(f"and {len(documents) - _LISTED_LOST} more")
    logger.error(
        "LOST %d events: the database was unreachable and the spool %s could not keep them"
        " (%s): %s",
        len(documents),
        path,
        _why(error),
        "; ".join(listed),
    )


def _describe(document: Mapping[str, Any]) -> str:
    run = document.get("run_key") or document.get("pipeline_id")
    parts = [
        f"event_id={document.get('event_id')}",
        f"run={run}",
        f"pipeline={document.get('pipeline_name')}",
        f"stage={document.get('stage_name')}",
        f"status={document.get('status')}",
        f"at={document.get('event_time')}",
    ]
    return " ".join(parts)


def _why(error: OSError) -> str:
    if isinstance(error, UnsafeSpoolError):
        return str(error)
    return error.strerror or str(error)


def _fsync_directory(directory: Path) -> None:
    # A new or removed file name is durable only once its directory is synced.
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
