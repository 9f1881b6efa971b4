"""What a process pool's worker does with a run handed to it (importable by spawned workers)."""

from __future__ import annotations

import os

from loader import Ledger, Run


def record_stage(run: Run, stage_name: str) -> int:
    """Record a stage of `run` (started in the parent) as a worker would; return our pid."""
    with run.stage(stage_name) as stage:
        stage.records = len(stage_name)
    return os.getpid()


def record_stage_attached(ledger: Ledger, run: Run | str, stage_name: str) -> int:
    """Record a stage through `ledger.attach(run)`, given the Run itself or its run_key."""
    with ledger.attach(run).stage(stage_name) as stage:
        stage.records = len(stage_name)
    return os.getpid()
