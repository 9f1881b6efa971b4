"""`ledger report --html`: one self-contained page, checked in headless Chromium.

The demo history plus a hostile run (markup and `<script>` in its pipeline name and its
error message) is built once for the module; the page is loaded in Debian's chromium
with every network request refused and counted, and what it shows is compared with the
marts. Without chromium the browser tests skip with the reason, except under CI=true,
where they fail: CI must run them.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from loader import Ledger
from loader.cli import main
from loader.connection import Connection, connect
from loader.markup import Markup, element
from loader.report import HEALTH_ORDER
from loader.report_html import LATEST_RUNS, read_report, render
from loader.settings import Settings
from loader.simulate import simulate
from tests.support import query

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HOSTILE_NAME = "<script>window.pwned = 1</script><b>bold</b> & co"
HOSTILE_ERROR = '<img src=x onerror="window.pwned = 2"><script>window.pwned = 3</script>\'"'
HOSTILE_KEY = "hostile@1"


@pytest.fixture(scope="module")
def built(database: Settings, run_dbt: Any) -> Settings:
    """The demo history and one hostile run, built by dbt (models only)."""
    start = datetime.now(UTC) - timedelta(minutes=20)
    with Ledger(database) as ledger:
        simulate(ledger)

        def event(status: str, minutes: int, **fields: Any) -> dict[str, Any]:
            at = (start + timedelta(minutes=minutes)).isoformat()
            return {"run_key": HOSTILE_KEY, "status": status, "event_time": at, **fields}

        ledger.emit_many(
            [
                event("pending", 0, pipeline_name=HOSTILE_NAME),
                event("running", 1, stage_name="load"),
                event("failed", 3, stage_name="load", error_message="first try"),
                event("running", 4, stage_name="load", attempt=2),
                event("failed", 6, stage_name="load", attempt=2, error_message=HOSTILE_ERROR),
                event("failed", 6, error_message=HOSTILE_ERROR),
            ]
        )
    run_dbt("run")
    return database


@pytest.fixture(scope="module")
def conn(built: Settings) -> Iterator[Connection]:
    with connect(built, autocommit=True) as connection:
        yield connection


@pytest.fixture(scope="module")
def report_file(built: Settings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The page, written by the CLI as a user runs it."""
    path = tmp_path_factory.mktemp("report") / "ledger-report.html"
    with pytest.MonkeyPatch.context() as patch:
        for name, value in built.as_env().items():
            patch.setenv(name, value)
        assert main(["report", "--html", str(path)]) == 0
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian chromium through playwright; skip (fail in CI) without them."""
    in_ci = os.environ.get("CI") == "true"
    reason = None
    try:
        from playwright.sync_api import sync_playwright  # noqa: PLC0415  # optional in dev
    except ImportError:
        reason = "playwright is not installed: pip install -e '.[dev]'"
    if reason is None and not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        reason = f"no chromium at {CHROMIUM}: as root, `apt-get install chromium` (make setup)"
    if reason is not None:
        if in_ci:
            pytest.fail(f"CI runs the browser tests: {reason}")
        pytest.skip(reason)
    with sync_playwright() as playwright:
        handle = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield handle
        handle.close()


class Visit:
    """A page loaded with the network blocked, and what it asked for and complained of."""

    def __init__(self, browser: Any, url: str, *, width: int = 1280) -> None:
        self.url = url
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.context = browser.new_context(viewport={"width": width, "height": 900})
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on(
            "console", lambda message: message.type == "error" and self.errors.append(message.text)
        )
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.goto(url)
        self.page.wait_for_load_state("load")

    def _route(self, route: Any) -> None:
        if route.request.url == self.url:
            route.continue_()
        else:
            route.abort()

    def texts(self, selector: str) -> list[str]:
        return [text.strip() for text in self.page.locator(selector).all_inner_texts()]

    def close(self) -> None:
        self.context.close()


@pytest.fixture(scope="module")
def visit(browser: Any, report_file: Path) -> Iterator[Visit]:
    page = Visit(browser, report_file.as_uri())
    yield page
    page.close()


def test_the_page_is_one_small_self_contained_file_with_a_strict_policy(report_file):
    page = report_file.read_text(encoding="utf-8")
    assert report_file.stat().st_size < 2 * 2**20
    assert '<meta http-equiv="Content-Security-Policy"' in page
    assert "default-src &#x27;none&#x27;" in page
    assert "<script" not in page.lower()
    assert "<img" not in page.lower()
    # The only URL is the SVG namespace, an identifier that nothing fetches.
    assert set(re.findall(r"\b[a-z]+://[^\s\"'<>)]*", page)) == {"http://www.w3.org/2000/svg"}


def test_the_browser_loads_it_offline_without_errors_or_requests(visit, report_file):
    assert visit.requests == [report_file.as_uri()]
    assert visit.errors == []


def test_the_request_count_would_catch_a_fetch(browser, tmp_path):
    leaky = tmp_path / "leaky.html"
    leaky.write_text('<!doctype html><img src="http://ledger.invalid/pixel.png">')
    page = Visit(browser, leaky.as_uri())
    try:
        assert page.requests == [leaky.as_uri(), "http://ledger.invalid/pixel.png"]
    finally:
        page.close()


def test_health_shows_the_marts_rows_worst_first(visit, conn):
    expected = query(
        conn,
        "select pipeline_name, owner, health from marts.pipeline_health"
        " order by array_position(%s::text[], health), pipeline_name",
        [list(HEALTH_ORDER)],
    )
    rows = visit.page.locator("#health tbody tr")
    shown = [
        dict(zip(("pipeline_name", "owner", "health"), row[:3], strict=True))
        for row in (
            [cell.strip() for cell in rows.nth(i).locator("td").all_inner_texts()]
            for i in range(rows.count())
        )
    ]
    assert shown == expected
    ranks = [HEALTH_ORDER.index(row["health"]) for row in shown]
    assert ranks == sorted(ranks)
    assert shown[0]["health"] == "stale"


def test_the_timeline_shows_the_latest_runs_and_marks_retries_and_the_failed_stage(visit, conn):
    latest = query(
        conn,
        "select pipeline_id from marts.fct_pipeline_runs"
        " order by created_at desc, pipeline_id desc limit %s",
        [LATEST_RUNS],
    )
    ids = visit.page.locator("#timeline [data-run-id]").evaluate_all(
        "runs => runs.map(run => Number(run.dataset.runId))"
    )
    assert ids == [row["pipeline_id"] for row in latest]

    [hostile] = query(conn, "select id from public.pipelines where run_key = %s", [HOSTILE_KEY])
    run = visit.page.locator(f"#timeline [data-run-id='{hostile['id']}']")
    failed = run.locator("li.stage.failed")
    assert failed.count() == 1
    assert "\u2715 failed" in failed.inner_text()
    assert "\u21bb 2 attempts" in failed.inner_text()


def test_runs_in_progress_show_stages_done_of_planned_and_records_so_far(visit, conn):
    runs = query(
        conn,
        """
        select runs.id, count(stages.id) filter (where stages.status = 'completed') as done,
            greatest(count(stages.id), coalesce(cardinality(
                string_to_array(min(dim.expected_stages), '|')), 0)) as planned,
            coalesce(sum(stages.records_processed), 0) as records
        from public.pipelines as runs
        left join public.pipeline_stages as stages on stages.pipeline_id = runs.id
        left join marts.dim_pipelines as dim on dim.pipeline_name = runs.pipeline_name
        where runs.status in ('pending', 'running')
        group by runs.id
        """,
    )
    assert len(runs) == 3
    for run in runs:
        item = visit.page.locator(f"#in-progress [data-run-id='{run['id']}']")
        text = item.inner_text()
        assert f"{run['done']} of {run['planned']} stages done" in text
        assert f"{run['records']:,} records so far" in text


def test_stale_runs_and_anomalies_are_the_marts(visit, conn):
    stale = query(conn, "select pipeline_id from marts.fct_pipeline_runs where is_stale")
    ids = visit.page.locator("#stale tbody tr").evaluate_all(
        "rows => rows.map(row => Number(row.dataset.runId))"
    )
    assert ids == [row["pipeline_id"] for row in stale]
    assert len(ids) == 1
    keys = query(
        conn,
        "select run_key from marts.run_anomalies where created_at >= %s"
        " order by created_at desc, pipeline_id desc, metric",
        [datetime.now(UTC) - timedelta(days=30)],
    )
    assert visit.texts("#anomalies tbody tr td:first-child") == [row["run_key"] for row in keys]


def test_hostile_names_and_messages_show_as_text_and_nothing_runs(visit):
    body = visit.page.inner_text("body")
    assert HOSTILE_NAME in body
    assert HOSTILE_ERROR in body
    assert visit.page.evaluate("document.querySelectorAll('script, img, b').length") == 0
    assert visit.page.evaluate("typeof window.pwned") == "undefined"
    assert visit.errors == []


def test_a_400_px_window_has_no_horizontal_scroll_and_printing_works(browser, report_file):
    narrow = Visit(browser, report_file.as_uri(), width=400)
    try:
        assert narrow.page.evaluate("document.documentElement.scrollWidth") <= 400
        narrow.page.emulate_media(media="print")
        assert narrow.page.locator("nav").is_hidden()
        assert narrow.page.pdf()[:4] == b"%PDF"
        assert narrow.errors == []
    finally:
        narrow.close()


def test_an_aborted_run_gets_the_aborted_badge(conn):
    before = render(read_report(conn), generated_at=datetime.now(UTC))
    assert 'class="badge aborted"' not in before
    [run] = query(conn, "select id from public.pipelines where run_key = %s", [HOSTILE_KEY])
    conn.execute("update marts.fct_pipeline_runs set is_aborted = (pipeline_id = %s)", [run["id"]])
    try:
        page = render(read_report(conn), generated_at=datetime.now(UTC))
    finally:
        conn.execute("update marts.fct_pipeline_runs set is_aborted = false")
    assert page.count('<span class="badge aborted">aborted</span>') == 1


@pytest.mark.parametrize(
    ("built_markup", "html"),
    [
        (element("td", "<b>&</b>"), "<td>&lt;b&gt;&amp;&lt;/b&gt;</td>"),
        (element("a", "x", href='"><script>'), '<a href="&quot;&gt;&lt;script&gt;">x</a>'),
        (element("p", "a\x1b[31mb"), "<p>a\\x1b[31mb</p>"),
        (element("p", Markup("<i>ok</i>"), ["<", None]), "<p><i>ok</i>&lt;</p>"),
        (element("meta", charset="utf-8", hidden=True, lang=None), '<meta charset="utf-8" hidden>'),
    ],
)
def test_markup_escapes_every_string_it_did_not_build(built_markup, html):
    assert built_markup == html


@pytest.mark.parametrize("name", ["script onload", 'a"b', "", "x>"])
def test_markup_refuses_a_tag_or_attribute_name_it_cannot_trust(name):
    with pytest.raises(ValueError, match="not a tag or attribute name"):
        element(name)
    with pytest.raises(ValueError, match="not a tag or attribute name"):
        element("p", attrs={name: "x"})
