"""The package's SQL files (`loader/sql/`), linted by sqlfluff and read once."""

from __future__ import annotations

from functools import cache
from importlib.resources import files


@cache
def read_sql(name: str) -> str:
    """Return the text of `loader/sql/<name>.sql`."""
    return files("loader").joinpath(f"sql/{name}.sql").read_text(encoding="utf-8")
