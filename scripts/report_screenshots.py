"""Screenshot an HTML report at 1280 and 400 px wide, as docs/report-*.png show it.

    .venv/bin/python scripts/report_screenshots.py target/ledger-report.html docs

Uses Debian's chromium through playwright (no browser download), with the network blocked.
The 1280 px shot is the top of the page (summary, health, the first pipelines); the
400 px one is the top of a phone-sized window.
"""

from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

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
SHOTS = ((1280, 1500), (400, 1700))


def main(report: Path, out_dir: Path) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for width, height in SHOTS:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.route("**/*", lambda route: route.abort() if route.request.url.startswith(
                "http") else route.continue_())  # fmt: skip
            page.goto(report.resolve().as_uri())
            target = out_dir / f"report-{width}.png"
            page.screenshot(path=str(target))
            print(f"{target}: {target.stat().st_size // 1024} KB")
            page.close()
        browser.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
