"""Pipeline Ledger's loader: record pipeline run events in PostgreSQL.

from loader import Ledger

with Ledger() as ledger, ledger.run("daily_sales", stages=["extract"]) as run:
    with run.stage("extract") as stage:
        stage.records = extract()
"""

from loader.api import Ledger, Run, Stage
from loader.asynchronous import AsyncLedger, AsyncRun, AsyncStage
from loader.batch import LoadResult, Rejection
from loader.contract import STATUSES, Event
from loader.errors import (
    BadEventError,
    ConfigurationError,
    LedgerError,
    RejectedEventsError,
    TransientError,
)
from loader.events import parse_event, parse_line
from loader.settings import Settings

__all__ = [
    "STATUSES",
    "AsyncLedger",
    "AsyncRun",
    "AsyncStage",
    "BadEventError",
    "ConfigurationError",
    "Event",
    "Ledger",
    "LedgerError",
    "LoadResult",
    "RejectedEventsError",
    "Rejection",
    "Run",
    "Settings",
    "Stage",
    "TransientError",
    "parse_event",
    "parse_line",
]
