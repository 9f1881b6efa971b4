"""The command line: `python -m loader ...` or `ledger ...` for shell jobs and operators."""

from __future__ import annotations

import argparse
import dataclasses
import gc
import logging
import os
import shlex
import sys
from collections.abc import Sequence
from contextlib import ExitStack, nullcontext, suppress
from datetime import UTC, datetime
from pathlib import Path

from loader import connection, embedded
from loader.api import Ledger
from loader.batch import LoadResult, Rejection
from loader.contract import STATUSES, TERMINAL_STATUSES
from loader.errors import (
    BadEventError,
    ConfigurationError,
    LedgerError,
    RejectedEventsError,
    TransientError,
)
from loader.ingest import ingest_stream
from loader.prune import prune
from loader.report import print_report
from loader.report_html import write_html_report
from loader.roles import (
    LOADER,
    ROLES,
    RolesNotPermittedError,
    create_roles,
    ensure_login,
    roles_sql,
)
from loader.schema import create_raw_schema
from loader.settings import Settings
from loader.simulate import simulate
from loader.superset import DEFAULT_DATABASE_NAME, Target, write_bundle
from loader.terminal import printable

EXIT_REJECTED = 2
LOGIN_PASSWORD = "LEDGER_LOGIN_PASSWORD"
"""Where `ledger roles --login` reads the password: never on a command line (ps)."""
_RUN_HELP = "the run's integer id (printed by start), its run key, or key:RUN_KEY"

_INGEST_GC_THRESHOLD = 100_000
"""Allocations between the cyclic collector's young passes in `ledger ingest` (700 by
default): measured, 112k against 91k events/s."""
_INGEST_SWITCH_INTERVAL = 0.001
"""Seconds a thread holds the GIL while another waits for it, in `ledger ingest` (0.005 by
default): a batch's writer waited for it after each of its round trips, and the load
waited for the writer."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return the process exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env()
    try:
        return int(args.command(args, settings))
    except (BadEventError, RejectedEventsError) as error:
        print(f"rejected: {error}", file=sys.stderr)
        return EXIT_REJECTED
    except LedgerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ledger", description="Record pipeline runs in the Pipeline Ledger."
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    db = commands.add_parser("db", help="manage the embedded PostgreSQL")
    db.add_argument("action", choices=["start", "stop", "status", "env"])
    db.set_defaults(command=_db)

    init = commands.add_parser(
        "init", help="create the raw schema and, given CREATEROLE, the roles (idempotent)"
    )
    init.set_defaults(command=_init)

    roles = commands.add_parser(
        "roles", help="create the access-control roles and grants (needs CREATEROLE)"
    )
    roles.add_argument(
        "--sql", action="store_true", help="print the SQL for an administrator instead"
    )
    roles.add_argument(
        "--login", metavar="NAME",
        help=f"then create the login NAME in --role, or update it; password: ${LOGIN_PASSWORD}",
    )  # fmt: skip
    roles.add_argument(
        "--role", choices=ROLES, default=LOADER, help="the login's role (default ledger_loader)"
    )
    roles.set_defaults(command=_roles)

    _add_run_parsers(commands)

    prune = commands.add_parser(
        "prune", help="delete raw events of runs that ended before DATE, once dbt built them"
    )
    prune.add_argument(
        "--before", required=True, type=_utc_datetime, metavar="DATE",
        help="a date (midnight UTC) or an ISO 8601 timestamp (UTC when it has no offset)",
    )  # fmt: skip
    prune.set_defaults(command=_prune)

    flush = commands.add_parser("flush", help="deliver the events spooled during an outage")
    flush.set_defaults(command=_flush)

    parked = commands.add_parser(
        "parked", help="list events waiting for an event that names their run's pipeline"
    )
    parked.set_defaults(command=_parked)

    ingest = commands.add_parser("ingest", help="bulk-load JSON-lines event files ('-': stdin)")
    ingest.add_argument("files", nargs="+", metavar="FILE")
    ingest.set_defaults(command=_ingest)

    _add_serve_parser(commands)

    sim = commands.add_parser("simulate", help="record a realistic demo history via the API")
    sim.add_argument("--days", type=int, default=14, help="days of history (default 14)")
    sim.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    sim.set_defaults(command=_simulate)

    _add_bi_parser(commands)

    report = commands.add_parser("report", help="print what dbt derived")
    report.add_argument(
        "--html", type=Path, metavar="FILE",
        help="write a self-contained HTML report to FILE instead (docs/report.md)",
    )  # fmt: skip
    report.set_defaults(command=_report)
    return parser


def _add_run_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The commands a shell job reports its run with: start, stage, finish."""
    start = commands.add_parser("start", help="record a new run; print its integer id")
    start.add_argument("pipeline_name", metavar="NAME")
    start.add_argument("--run-key", help="the job's own id for the run (default: generated)")
    start.add_argument(
        "--stage", action="append", default=[], metavar="S", help="a planned stage (repeat)"
    )
    start.add_argument("--pending", action="store_true", help="queued, not running yet")
    _add_run_attempt(start)
    start.set_defaults(command=_start)

    stage = commands.add_parser("stage", help="record a stage event of a run")
    stage.add_argument("run", type=_run_reference, metavar="RUN", help=_RUN_HELP)
    stage.add_argument("stage_name", metavar="STAGE")
    stage.add_argument("status", choices=STATUSES, metavar="STATUS")
    stage.add_argument("--records", type=int)
    stage.add_argument("--error")
    stage.add_argument("--attempt", type=int, default=1)
    _add_run_attempt(stage)
    stage.set_defaults(command=_stage)

    finish = commands.add_parser("finish", help="record that a run completed or failed")
    finish.add_argument("run", type=_run_reference, metavar="RUN", help=_RUN_HELP)
    finish.add_argument("status", choices=sorted(TERMINAL_STATUSES), metavar="completed|failed")
    finish.add_argument("--records", type=int)
    finish.add_argument("--error")
    _add_run_attempt(finish)
    finish.set_defaults(command=_finish)


def _add_run_attempt(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--run-attempt", type=int, default=1, metavar="N",
        help="the run's attempt, from 1: a flow retried under the same run key (default 1)",
    )  # fmt: skip


def _db(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.names_embedded_server:
        if args.action == "env":
            _print_exports(settings.as_env())
            return 0
        print(f"DATABASE_HOST is set ({settings.host}): no embedded server is used")
        return 0 if args.action == "status" else 1
    if args.action == "start":
        address = embedded.start(settings.embedded_dir)
        connection.resolve(dataclasses.replace(settings, host=None))
        print(f"embedded PostgreSQL running in {settings.embedded_dir} ({address.socket_dir})")
        return 0
    if args.action == "stop":
        print("stopped" if embedded.stop(settings.embedded_dir) else "not running")
        return 0
    running = embedded.address(settings.embedded_dir)
    if running is None:
        print(
            f"the embedded PostgreSQL in {settings.embedded_dir} is not running"
            + (": start it with `ledger db start`" if args.action == "env" else ""),
            file=sys.stderr if args.action == "env" else sys.stdout,
        )
        return 3
    if args.action == "env":
        reached = dataclasses.replace(settings, host=str(running.socket_dir), port=running.port)
        _print_exports({**reached.as_env(), "LEDGER_EMBEDDED_DIR": str(settings.embedded_dir)})
    else:
        print(f"running, socket in {running.socket_dir}")
    return 0


def _print_exports(variables: dict[str, str]) -> None:
    for name, value in variables.items():
        print(f"export {name}={shlex.quote(value)}")


def _init(args: argparse.Namespace, settings: Settings) -> int:
    with connection.connect(connection.resolve(settings)) as conn:
        create_raw_schema(conn)
        print("raw schema ready")
        try:
            create_roles(conn)
        except RolesNotPermittedError as error:
            # The raw schema is usable without roles: a managed server's admin adds them.
            print(f"notice: roles not created: {error}", file=sys.stderr)
        else:
            # stdout stays "raw schema ready", which scripts may match.
            print(f"roles ready: {', '.join(ROLES)}", file=sys.stderr)
    return 0


def _roles(args: argparse.Namespace, settings: Settings) -> int:
    if args.sql:
        print(roles_sql(), end="")
        return 0
    password = os.environ.get(LOGIN_PASSWORD, "")
    if args.login and not password:
        raise ConfigurationError(f"--login {args.login}: set {LOGIN_PASSWORD} to its password")
    with connection.connect(connection.resolve(settings)) as conn:
        create_roles(conn)
        print(f"roles ready: {', '.join(ROLES)}")
        if args.login:
            created = ensure_login(conn, args.login, args.role, password=password)
            print(f"login {args.login} {'created' if created else 'updated'} in {args.role}")
    return 0


def _start(args: argparse.Namespace, settings: Settings) -> int:
    with Ledger(settings, source="cli") as ledger:
        run = ledger.start_run(
            args.pipeline_name,
            run_key=args.run_key,
            stages=args.stage,
            status="pending" if args.pending else "running",
            run_attempt=args.run_attempt,
        )
    # While the database is unreachable the run has no integer id yet; its run_key
    # names it just as well for the `stage` and `finish` commands.
    print(run.id if run.id is not None else printable(_key_reference(str(run.run_key))))
    return 0


def _stage(args: argparse.Namespace, settings: Settings) -> int:
    with Ledger(settings, source="cli") as ledger:
        run = ledger.attach(args.run, run_attempt=args.run_attempt)
        stage = run.stage(args.stage_name, attempt=args.attempt)
        stage.record(args.status, records=args.records, error=args.error)
    return 0


def _finish(args: argparse.Namespace, settings: Settings) -> int:
    with Ledger(settings, source="cli") as ledger:
        run = ledger.attach(args.run, run_attempt=args.run_attempt)
        run.record(args.status, records=args.records, error=args.error)
    return 0


def _ingest(args: argparse.Namespace, settings: Settings) -> int:
    # A process of its own that only loads. A batch's objects hold no reference cycles
    # (reference counting frees them), and the cyclic collector's passes over a batch's
    # objects cost a fifth of the load's time; it still runs, far less often.
    gc.set_threshold(_INGEST_GC_THRESHOLD, 50, 100)
    # The thread writing a batch needs the GIL for a moment after each of its round trips;
    # the thread checking the next batch holds it for up to the switch interval.
    sys.setswitchinterval(_INGEST_SWITCH_INTERVAL)
    rejected = 0
    with Ledger(settings, source="ingest") as ledger, ExitStack() as stack:
        conn = ledger.connection()
        # A second server process copies half of each batch of plain lines (split by run)
        # while the first copies the other half: the server's work is the load's limit.
        # Best effort: a server with no connection to spare loads on one.
        try:
            more = [stack.enter_context(connection.connect(settings, autocommit=True))]
        except TransientError as error:
            print(printable(f"ledger ingest: loading on one connection ({error})"), file=sys.stderr)
            more = []
        for name in args.files:

            def report(rejection: Rejection, name: str = name) -> None:
                # A closed stderr (`2>&1 | head`) must not stop the load: every reason is
                # in the quarantine, and the counts go to stdout.
                with suppress(BrokenPipeError):
                    print(printable(f"{name}: {rejection}"), file=sys.stderr)

            with nullcontext(sys.stdin.buffer) if name == "-" else Path(name).open("rb") as stream:
                result = ingest_stream(
                    conn,
                    stream,
                    source=name,
                    max_line_bytes=settings.max_line_bytes,
                    report=report,
                    more_connections=more,
                )
            print(printable(f"{name}: {_counts(result)}"))
            rejected += result.rejected
    return EXIT_REJECTED if rejected else 0


def _flush(args: argparse.Namespace, settings: Settings) -> int:
    with Ledger(settings, source="flush") as ledger:
        result = ledger.flush()
    for rejection in result.rejections:
        print(printable(f"spooled {rejection}"), file=sys.stderr)
    print(f"{_counts(result)} from {settings.spool_dir}")
    return EXIT_REJECTED if result.rejections else 0


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from loader.serve import TOKEN_VARIABLE, serve  # noqa: PLC0415  # web stack: only here

    logging.getLogger("loader").setLevel(logging.INFO)
    serve(
        settings,
        host=args.host,
        port=args.port,
        token=os.environ.get(TOKEN_VARIABLE) or None,
        read_timeout=args.read_timeout,
        announce=lambda line: print(line, flush=True),
    )
    return 0


def _counts(result: LoadResult) -> str:
    """What a load did, as `ingest` and `flush` print it (scripts may match the start)."""
    counts = (
        f"{result.accepted} accepted, {result.duplicates} duplicate, {result.rejected} rejected"
    )
    if result.parked:
        counts += f", {result.parked} parked (their run is not named yet: `ledger parked`)"
    if result.unparked:
        counts += f", {result.unparked} parked earlier landed"
    return counts


def _parked(args: argparse.Namespace, settings: Settings) -> int:
    with connection.connect(connection.resolve(settings)) as conn:
        rows = conn.execute(
            "select run_key, events, first_parked_at, origins from raw.parked_runs"
            " order by first_parked_at, run_key"
        ).fetchall()
    if not rows:
        print("no parked events")
        return 0
    print("run_key\tevents\tfirst_parked_at\torigins")
    for run_key, events, first_parked_at, origins in rows:
        fields = (run_key, str(events), f"{first_parked_at:%Y-%m-%d %H:%M:%S%z}", ",".join(origins))
        print("\t".join(printable(field) for field in fields))
    return 0


def _prune(args: argparse.Namespace, settings: Settings) -> int:
    with connection.connect(connection.resolve(settings), autocommit=True) as conn:
        result = prune(conn, before=args.before)
    print(
        f"pruned {result.events} raw events of {result.runs} runs that ended before "
        f"{args.before.astimezone(UTC):%Y-%m-%d %H:%M}Z; kept {result.kept} ended runs"
        " dbt has not built yet"
    )
    return 0


def _utc_datetime(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# During an outage `start` prints a run key where it would print the integer id. A key
# that reads as an id (all digits) or starts with this prefix is printed with it, and
# `stage`/`finish` read it back as a run key, never as an id.
_KEY_PREFIX = "key:"


def _run_reference(text: str) -> int | str:
    if text.startswith(_KEY_PREFIX):
        return text.removeprefix(_KEY_PREFIX)
    return int(text) if text.isdigit() else text


def _key_reference(run_key: str) -> str:
    ambiguous = run_key.isdigit() or run_key.startswith(_KEY_PREFIX)
    return _KEY_PREFIX + run_key if ambiguous else run_key


def _simulate(args: argparse.Namespace, settings: Settings) -> int:
    with Ledger(settings, source="simulate") as ledger:
        runs = simulate(ledger, days=args.days, seed=args.seed)
    print(f"simulated {runs} runs")
    return 0


def _add_serve_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser(
        "serve", help="the HTTP collector: OpenLineage and native events (docs/collector.md)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=5000, help="port (default 5000; 0: any)")
    serve.add_argument(
        "--read-timeout", type=float, default=10.0, metavar="SECONDS",
        help="how long a client may take to send its body (default 10; then 408)",
    )  # fmt: skip
    serve.set_defaults(command=_serve)


def _add_bi_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bi = commands.add_parser("bi", help="files for BI tools (docs/superset.md)")
    bi_tools = bi.add_subparsers(required=True, metavar="TOOL")
    bundle = bi_tools.add_parser(
        "superset-bundle", help="write a Superset import bundle: datasets, charts, dashboard"
    )
    bundle.add_argument("--user", required=True, help="the reader login Superset connects as")
    bundle.add_argument(
        "--output", type=Path, default=Path("pipeline_ledger_superset.zip"), metavar="FILE",
        help="where to write the ZIP (default pipeline_ledger_superset.zip)",
    )  # fmt: skip
    bundle.add_argument("--host", help="the host Superset reaches (default DATABASE_HOST)")
    bundle.add_argument("--port", type=int, help="the port it reaches (default DATABASE_PORT)")
    bundle.add_argument(
        "--name", default=DEFAULT_DATABASE_NAME,
        help=f"the database's name in Superset (default {DEFAULT_DATABASE_NAME!r})",
    )  # fmt: skip
    bundle.set_defaults(command=_superset_bundle)


def _superset_bundle(args: argparse.Namespace, settings: Settings) -> int:
    host = args.host or settings.host
    if host is None or host.startswith("/"):
        raise ConfigurationError(
            "the embedded server listens only on a unix socket, which Superset cannot reach:"
            " name the server with DATABASE_HOST or --host"
        )
    target = Target(
        host=host, port=args.port or settings.port, dbname=settings.dbname, user=args.user,
        database_name=args.name,
    )  # fmt: skip
    write_bundle(target, args.output)
    print(f"wrote {args.output}: import it in Superset (Dashboards, Import dashboard),")
    print(f"which asks for the password of {args.user}")
    return 0


def _report(args: argparse.Namespace, settings: Settings) -> int:
    with connection.connect(connection.resolve(settings)) as conn:
        if args.html is None:
            print_report(conn)
            return 0
        size = write_html_report(conn, args.html)
    print(printable(f"HTML report: {args.html} ({size / 1024:.0f} KB)"))
    return 0
