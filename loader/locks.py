"""The advisory lock keys the loader's processes agree on.

Advisory locks need no privilege, so a `ledger_loader` login can take them (a row lock
with `FOR SHARE` would need UPDATE on the table).
"""

from __future__ import annotations

# The first key of a run's lock, (RUN_LOCK_SPACE, pipeline_id folded into an integer):
# a batch holds it shared while it writes a run's events, `ledger prune` exclusively
# while it decides whether the run's history is final and closes it. Two runs sharing a
# folded id only wait for each other.
RUN_LOCK_SPACE = 0x1ED6E3
