"""dbt over a long history: an incremental run after a small load, against a full refresh."""

from __future__ import annotations

import io
import json
import statistics
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from psycopg import ClientCursor

from bench.databases import fresh_database, run_dbt, slowest_models
from bench.loading import run_events
from loader.connection import connect
from loader.ingest import ingest_stream

GENERATOR = Path(__file__).with_name("generate_history.sql")
EVENTS_PER_RUN = 14
RUN_INTERVAL = timedelta(seconds=72)  # 1,200 runs a day, whatever the history's length
LATE_SHARE = 0.2  # of the new events: heartbeats for runs 3 to 7 weeks old
LATE_AGES = (timedelta(weeks=3), timedelta(weeks=7))
ROUNDS = 3  # each figure is the median of three rounds (the ingest rows' too)


@dataclass(frozen=True)
class ScaleResult:
    """Seconds dbt spent on each build of one history, round by round."""

    history_events: int
    full_refreshes: tuple[float, ...]
    incrementals: tuple[float, ...]

    @property
    def full_refresh(self) -> float:
        return statistics.median(self.full_refreshes)

    @property
    def incremental(self) -> float:
        return statistics.median(self.incrementals)


def measure(history_events: int, new_events: int, work_dir: Path) -> ScaleResult:
    """Build a history, load `new_events` (some late) through the loader, time both builds."""
    name = f"bench_dbt_{history_events}"
    target = work_dir / name
    with fresh_database(name) as settings:
        runs = history_events // EVENTS_PER_RUN
        with connect(settings, autocommit=True) as conn:
            # Client-side binding: the script is several statements (one transaction).
            ClientCursor(conn).execute(
                GENERATOR.read_text(encoding="utf-8"),
                {"runs": runs, "run_interval_seconds": RUN_INTERVAL.total_seconds()},
            )
            conn.execute("vacuum analyze raw.run_events")
            [(stored,)] = conn.execute("select count(*) from raw.run_events").fetchall()
        run_dbt(settings, target, "seed")
        run_dbt(settings, target, "run", "--full-refresh")
        # Steady state: the tables the full refresh just made are vacuumed and analyzed (else
        # autovacuum does it during the rounds, on two cores), and what the builds wrote is
        # on disk (else the server writes it over the next minutes, during the rounds too).
        with connect(settings, autocommit=True) as conn:
            conn.execute("vacuum analyze")
            conn.execute("checkpoint")
        # Steady state: loads in a row, each followed by an incremental run.
        incrementals = []
        for round_number in range(ROUNDS):
            new = _new_events(runs, new_events, round_number)
            with connect(settings, autocommit=True) as conn:
                loaded = ingest_stream(conn, io.BytesIO(new), source="bench")
            if loaded.accepted != new_events:
                raise RuntimeError(f"the new events did not all land: {loaded.rejections[:3]}")
            incrementals.append(run_dbt(settings, target, "run"))
            print(
                f"dbt on {stored:,} events, incremental round {round_number + 1}:"
                f" {incrementals[-1]:.2f} s; slowest: {slowest_models(target)}",
                flush=True,
            )
        full_refreshes = [run_dbt(settings, target, "run", "--full-refresh") for _ in range(ROUNDS)]
    return ScaleResult(stored, tuple(full_refreshes), tuple(incrementals))


def _new_events(runs: int, count: int, round_number: int) -> bytes:
    """New runs' events, plus late heartbeats for history runs 3 to 7 weeks old."""
    now = datetime.now(UTC)
    late = int(count * LATE_SHARE)
    youngest, oldest = LATE_AGES
    lines: list[dict[str, object]] = []
    for number in range(late):
        age = youngest + (oldest - youngest) * number / late
        # generate_history.sql starts run n at now - (runs - n) * RUN_INTERVAL.
        run = max(1, runs - int(age / RUN_INTERVAL))  # a short history: its oldest run
        started = now - (runs - run) * RUN_INTERVAL
        lines.append(
            {
                "run_key": f"bench-{run}",
                "stage_name": "extract",
                "status": "running",
                "event_time": (started + timedelta(minutes=6)).isoformat(),
                "records_processed": 1,
            }
        )
    new_run = 0
    while len(lines) < count:
        new_run += 1
        events = run_events(f"bench-new-{round_number}-{new_run}", now - timedelta(hours=1))
        lines.extend(events[: count - len(lines)])
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)
