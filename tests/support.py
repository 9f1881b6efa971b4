"""Helpers shared by the test modules."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from loader.connection import Connection

PROJECT_DIR = Path(__file__).resolve().parent.parent


def query(conn: Connection, statement: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
    """Return the rows of a query as dicts (column name → value)."""
    cursor = conn.execute(statement, list(params))  # type: ignore[arg-type]
    names = [column.name for column in cursor.description or ()]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def jsonl(events: Iterable[Mapping[str, Any]]) -> bytes:
    """Return events as a JSON-lines file's bytes."""
    return b"".join(json.dumps(event).encode() + b"\n" for event in events)
