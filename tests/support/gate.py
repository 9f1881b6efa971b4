"""A TCP address in front of a test database that a test opens, refuses or black-holes.

The outage tests need a database that is down (or never answers) and then comes back at
the same address, without stopping a server other modules use. `Gate` listens on
127.0.0.1 and, by its `mode`:

- "open": forwards every connection to the database (TCP or unix socket);
- "refuse": accepts and closes at once (the database is down: calls fail fast);
- "blackhole": never accepts (the kernel completes the handshake and nothing answers:
  every connect waits for its timeout);
- "silent": accepts, counts (`accepted`) and never answers: every connect waits for its
  timeout, and the test knows how many there were.
"""

from __future__ import annotations

import contextlib
import dataclasses
import select
import socket
import threading
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from loader.settings import Settings

Mode = Literal["open", "refuse", "blackhole", "silent"]


class Gate:
    """A listening socket on 127.0.0.1 in front of `database`, run by a thread of its own."""

    def __init__(self, database: Settings, mode: Mode = "open") -> None:
        self.database = database
        self.mode: Mode = mode
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port = int(self._listener.getsockname()[1])
        self._stopped = threading.Event()
        self.accepted = 0
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, name="gate", daemon=True)
        self._thread.start()

    def settings(self, **changes: Any) -> Settings:
        """The database's settings, reached through this gate."""
        return dataclasses.replace(self.database, host="127.0.0.1", port=self.port, **changes)

    def __enter__(self) -> Gate:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stopped.set()
        self._thread.join()
        self._listener.close()
        for held in self._held:
            held.close()

    def _serve(self) -> None:
        while not self._stopped.is_set():
            if self.mode == "blackhole":
                self._stopped.wait(0.02)
                continue
            ready, _, _ = select.select([self._listener], [], [], 0.02)
            if not ready:
                continue
            client, _ = self._listener.accept()
            self.accepted += 1
            if self.mode == "silent":
                self._held.append(client)
                continue
            if self.mode == "refuse":
                client.close()
                continue
            try:
                upstream = self._upstream()
            except OSError:
                client.close()
                continue
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(source, target), daemon=True).start()

    def _upstream(self) -> socket.socket:
        host = self.database.host or ""
        if host.startswith("/"):
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(str(Path(host) / f".s.PGSQL.{self.database.port}"))
            return upstream
        return socket.create_connection((host, self.database.port))


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                target.sendall(data)
    finally:
        for end in (source, target):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()
