"""A module's own embedded server, for tests that stop and start it (outages)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from psycopg import sql

from loader import embedded
from loader.connection import connect
from loader.settings import Settings


def fresh_database(server_dir: Path, name: str, spool_dir: Path) -> Settings:
    """A new database on the module's own server, reached by socket, never auto-started."""
    address = embedded.start(server_dir)
    admin = Settings(host=str(address.socket_dir), port=address.port, dbname="postgres")
    with connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    return dataclasses.replace(
        admin, dbname=name, spool_dir=spool_dir, connect_timeout=2, statement_timeout=20
    )
