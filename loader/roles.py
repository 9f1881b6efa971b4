"""Create the ledger's access-control roles and grants: loader, transformer, reader.

They are NOLOGIN group roles; people and services log in as their own users, granted
into one of them (`create_login`, or the SQL in docs/access-control.md).
"""

from __future__ import annotations

import logging
from typing import Final, Literal

from psycopg import errors, sql
from psycopg.errors import Diagnostic

from loader.connection import Connection
from loader.errors import ConfigurationError, LedgerError, TransientError
from loader.schema import INIT_LOCK_KEY, INIT_LOCK_TIMEOUT, raw_schema_exists
from loader.sql_files import read_sql

logger = logging.getLogger(__name__)

LOADER: Final = "ledger_loader"
TRANSFORMER: Final = "ledger_transformer"
READER: Final = "ledger_reader"
ROLES: Final = (LOADER, TRANSFORMER, READER)

GroupRole = Literal["ledger_loader", "ledger_transformer", "ledger_reader"]

ADMIN_COMMAND: Final = "python -m loader roles --sql"


class RolesNotPermittedError(LedgerError):
    """The connected user may not create the roles; an administrator must run the SQL."""

    def __init__(self, reason: str, database: str) -> None:
        super().__init__(
            f"{reason}. An administrator (a superuser, or a CREATEROLE role owning the "
            f"database) can run the SQL that `{ADMIN_COMMAND}` prints in database "
            f"{database!r}, e.g. `{ADMIN_COMMAND} | psql -d {database}`"
        )
        self.reason = reason


def roles_sql() -> str:
    """Return the idempotent SQL that creates the roles and grants them their privileges."""
    return read_sql("create_roles")


def can_create_roles(conn: Connection) -> bool:
    """Tell whether the connected user is a superuser or has CREATEROLE."""
    row = conn.execute(
        "select rolsuper or rolcreaterole from pg_catalog.pg_roles where rolname = current_user"
    ).fetchone()
    return bool(row and row[0])


def create_roles(conn: Connection) -> None:
    """Create (idempotently) the roles, the staging and marts schemas, and every grant.

    Run after the raw schema exists. Safe from several processes at once: init's advisory
    lock serialises them within a database, and the SQL tolerates a role created
    concurrently from another database. Raise RolesNotPermittedError, changing nothing,
    when the user lacks CREATEROLE or may not grant on the ledger's database and schemas.
    """
    try:
        with conn.transaction():
            if not can_create_roles(conn):
                raise RolesNotPermittedError(
                    f"{conn.info.user} may not create roles (it needs CREATEROLE)",
                    conn.info.dbname,
                )
            if not raw_schema_exists(conn):
                raise ConfigurationError("the raw schema does not exist: run `loader init` first")
            conn.execute("select pg_catalog.pg_advisory_xact_lock(%s::bigint)", [INIT_LOCK_KEY])
            conn.execute(
                "select pg_catalog.set_config('lock_timeout', %s, true)",
                [f"{round(INIT_LOCK_TIMEOUT * 1000)}ms"],
            )
            # The script's notices say what it changed beyond the roles (PUBLIC's CREATE
            # on schema public) or could not set: the administrator must see them.
            conn.add_notice_handler(_log_notice)
            try:
                conn.execute(roles_sql())
            finally:
                conn.remove_notice_handler(_log_notice)
    except errors.LockNotAvailable as error:
        raise TransientError(
            f"roles: a table of the ledger stayed locked for {INIT_LOCK_TIMEOUT:g} s (jobs or"
            " readers inside a transaction); run it again when they are done"
        ) from error
    except errors.InsufficientPrivilege as error:
        raise RolesNotPermittedError(
            f"{conn.info.user} may not grant the roles their privileges ({error})",
            conn.info.dbname,
        ) from error


def _log_notice(notice: Diagnostic) -> None:
    logger.warning("%s", notice.message_primary)


def create_login(
    conn: Connection, name: str, role: GroupRole, *, password: str | None = None
) -> None:
    """Create a LOGIN user that is a member of one group role.

    A transformer login acts as ledger_transformer from the start of each session, so
    that what dbt builds is owned by the group, not by whichever member ran it: any other
    member can then replace it, and the group's default privileges apply to it. A
    reader login (a BI tool) gets search_path marts and time zone UTC, so that the
    marts' names resolve unqualified and its days line up with run_date: role settings
    are not inherited from the group. A password travels in the statement's text: a
    server logging DDL logs it.
    """
    statement = sql.SQL("create role {name} login {password} in role {role}").format(
        name=sql.Identifier(name),
        password=sql.SQL("password {}").format(sql.Literal(password)) if password else sql.SQL(""),
        role=sql.Identifier(role),
    )
    with conn.transaction():
        conn.execute(statement)
        if role == TRANSFORMER:
            conn.execute(
                sql.SQL("alter role {name} set role = {role}").format(
                    name=sql.Identifier(name), role=sql.Literal(role)
                )
            )
        if role == READER:
            for setting, value in (("search_path", "marts"), ("timezone", "UTC")):
                conn.execute(
                    sql.SQL("alter role {name} set {setting} = {value}").format(
                        name=sql.Identifier(name),
                        setting=sql.Identifier(setting),
                        value=sql.Literal(value),
                    )
                )


def ensure_login(conn: Connection, name: str, role: GroupRole, *, password: str) -> bool:
    """Create the login `name` in `role`, or give an existing one this password and role.

    Idempotent, for a set-up run on every start (docker-compose's `ledger` service). Return
    whether the login was created. Refuse (ConfigurationError, changing nothing) a name that
    is the connected user, a superuser, or a role with CREATEROLE, CREATEDB or BYPASSRLS:
    a login meant to have no more than `role`'s rights must not already have more.
    """
    if not password:
        raise ConfigurationError(f"no password for the login {name!r}")
    with conn.transaction():
        row = conn.execute(
            "select rolsuper or rolcreaterole or rolcreatedb or rolbypassrls,"
            " rolname = current_user from pg_catalog.pg_roles where rolname = %s",
            [name],
        ).fetchone()
        if row is None:
            create_login(conn, name, role, password=password)
            return True
        if row[0] or row[1]:
            raise ConfigurationError(
                f"{name!r} is {'the connected user' if row[1] else 'a privileged role'}:"
                f" a login in {role} must be a role of its own with no other rights"
            )
        names = {"name": sql.Identifier(name), "role": sql.Identifier(role)}
        conn.execute(
            sql.SQL("alter role {name} login password {password}").format(
                **names, password=sql.Literal(password)
            )
        )
        conn.execute(sql.SQL("grant {role} to {name}").format(**names))
    return False
