"""Run every benchmark of issue "throughput and scale" and print one table of ratios.

python -m bench                 # the full sizes: 1M-event ingest, 10M-event history
python -m bench --scale 0.01    # everything 100 times smaller (a smoke test)
python -m bench --only collector    # one comparison only (names: see ONLY)
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench import collector, dbt_scale, loading
from bench.databases import fresh_database
from loader.connection import connect


@dataclass(frozen=True)
class Comparison:
    """One line of the table: ours against a baseline measured in the same run."""

    what: str
    ours: float
    baseline: float
    unit: str
    target: str
    passed: bool | None

    @property
    def ratio(self) -> float:
        return self.ours / self.baseline


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every size")
    parser.add_argument("--only", choices=ONLY, help="run one comparison only")
    args = parser.parse_args()
    sizes = {
        "ingest": int(1_000_000 * args.scale),
        "latency": max(200, int(2_000 * args.scale)),
        "history": int(10_000_000 * args.scale),
        "small_history": int(1_000_000 * args.scale),
        "new": max(140, int(10_000 * args.scale)),
        "collector": max(1_000, int(20_000 * args.scale)),
    }
    with tempfile.TemporaryDirectory(prefix="ledger-bench-") as work:
        if args.only == "collector":
            rows = run_collector(sizes, Path(work))
        elif args.only == "ingest":
            rows = run_ingest(sizes, Path(work))
        else:
            rows = run_all(sizes, Path(work))
    print_table(rows, sizes)


ONLY = ("collector", "ingest")


def run_collector(sizes: dict[str, int], work: Path) -> list[Comparison]:
    """`ledger serve` under 32 keep-alive connections vs the API's per-event calls."""
    events = sizes["collector"]
    with fresh_database("bench_collector_api") as settings:
        baseline = collector.api_throughput(settings, events)
    with fresh_database("bench_collector") as settings:
        run = collector.collector_throughput(settings, events, work)
    exact = run.stored == run.distinct == events and run.failed == 0
    p99 = loading.percentile(run.latencies, 0.99) * 1000
    p50 = loading.percentile(run.latencies, 0.5) * 1000
    return [
        Comparison(
            f"collector, 32 connections, {events:,} events (events/s) vs API per-event calls",
            run.events_per_second,
            baseline,
            "ev/s",
            ">= 3.0",
            run.events_per_second / baseline >= 3.0,
        ),
        Comparison(
            f"collector p99 latency (ms) vs p50; {run.stored:,} stored,"
            f" {run.distinct:,} distinct, {run.failed} failed",
            p99,
            p50,
            "ms",
            "exactly once",
            exact,
        ),
    ]


def run_ingest(sizes: dict[str, int], work: Path) -> list[Comparison]:
    """`ledger ingest` of a file against a raw COPY of as many rows: medians of three
    rounds, each on a fresh database, every round printed."""
    events_file = work / "events.jsonl"
    count = loading.write_events_file(events_file, sizes["ingest"])
    rounds = []
    for round_number in range(1, dbt_scale.ROUNDS + 1):
        with fresh_database("bench_ingest") as settings:
            ours, peak_mb = loading.ingest_throughput(settings, events_file, count)
            baseline = loading.copy_throughput(settings, count, work)
        print(
            f"ingest round {round_number}: {ours:,.0f} against {baseline:,.0f} events/s"
            f" ({ours / baseline:.3f}), peak RSS {peak_mb:.1f} MB",
            flush=True,
        )
        rounds.append((ours, baseline, peak_mb))
    ours, baseline, peak_mb = (statistics.median(column) for column in zip(*rounds, strict=True))
    return [
        Comparison(
            f"ingest {count:,} events (events/s)",
            ours,
            baseline,
            "ev/s",
            ">= 0.8",
            ours / baseline >= 0.8,
        ),
        Comparison("ingest peak RSS (MB, vs 200 MB)", peak_mb, 200, "MB", "< 1.0", peak_mb < 200),
    ]


def run_all(sizes: dict[str, int], work: Path) -> list[Comparison]:
    rows: list[Comparison] = run_collector(sizes, work)
    rows += run_ingest(sizes, work)
    with fresh_database("bench_latency") as settings:
        ours_times, baseline_times = loading.event_latencies(settings, sizes["latency"])
        for label, fraction, target in (("p50", 0.5, 2.0), ("p99", 0.99, None)):
            ours = loading.percentile(ours_times, fraction) * 1000
            baseline = loading.percentile(baseline_times, fraction) * 1000
            rows.append(
                Comparison(
                    f"API stage event {label} (ms) vs INSERT+commit",
                    ours,
                    baseline,
                    "ms",
                    f"<= {target}" if target else "reported",
                    ours / baseline <= target if target else None,
                )
            )
    large = dbt_scale.measure(sizes["history"], sizes["new"], work)
    small = dbt_scale.measure(sizes["small_history"], sizes["new"], work)
    rows.append(
        Comparison(
            f"dbt run after {sizes['new']:,} new events, {large.history_events:,}-event history"
            f" vs full refresh (s); runs {_seconds(large.incrementals)} vs"
            f" {_seconds(large.full_refreshes)}",
            large.incremental,
            large.full_refresh,
            "s",
            "<= 0.05",
            large.incremental / large.full_refresh <= 0.05,
        )
    )
    rows.append(
        Comparison(
            f"the same incremental run, {large.history_events:,} vs"
            f" {small.history_events:,}-event history (s); runs {_seconds(small.incrementals)}"
            " on the smaller",
            large.incremental,
            small.incremental,
            "s",
            "<= 1.5",
            large.incremental / small.incremental <= 1.5,
        )
    )
    return rows


def _seconds(values: tuple[float, ...]) -> str:
    """Each round's seconds, for the table's label: the figure is their median."""
    return "/".join(f"{value:.2f}" for value in values)


def print_table(rows: list[Comparison], sizes: dict[str, int]) -> None:
    with fresh_database("bench_version") as settings, connect(settings) as conn:
        [(version,)] = conn.execute("show server_version").fetchall()
    print(f"\nmachine: {platform.machine()}, {platform.system()} {platform.release()},")
    print(f"  Python {platform.python_version()}, PostgreSQL {version}; sizes: {sizes}\n")
    header = ("what", "ours", "baseline", "ratio", "target", "result")
    lines = [
        (
            row.what,
            f"{row.ours:,.2f}",
            f"{row.baseline:,.2f}",
            f"{row.ratio:.3f}",
            row.target,
            {True: "pass", False: "FAIL", None: "-"}[row.passed],
        )
        for row in rows
    ]
    widths = [max(len(str(cells[i])) for cells in (header, *lines)) for i in range(len(header))]
    for cells in (header, tuple("-" * w for w in widths), *lines):
        print("  ".join(str(cell).ljust(width) for cell, width in zip(cells, widths, strict=True)))


if __name__ == "__main__":
    main()
