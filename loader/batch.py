"""A batch on its way to the database: valid candidates, rejections, and what the load did."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from loader.contract import Event
from loader.errors import BadEventError

Item = TypeVar("Item")


@dataclass(frozen=True, slots=True)
class Rejection:
    """A line or event that broke the contract, with the reason and its original bytes."""

    reason: str
    raw: bytes
    line_number: int | None = None

    def __str__(self) -> str:
        if self.line_number is None:
            return self.reason
        return f"line {self.line_number}: {self.reason}"


@dataclass(frozen=True, slots=True)
class Candidate:
    """A valid event waiting to be written, with where it came from."""

    event: Event
    raw: bytes
    line_number: int | None = None


@dataclass(slots=True)
class LoadResult:
    """What a load did: events newly stored, duplicates skipped, lines rejected or spooled."""

    accepted: int = 0
    duplicates: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    spooled: int = 0
    """Events kept in the local spool because the database was unreachable."""
    parked: int = 0
    """Events of a run nobody named yet, waiting in raw.parked_events for its name."""
    unparked: int = 0
    """Events parked earlier that landed with this load, once it named their run."""
    reported: int = 0
    """Rejections handed to the caller as their batch landed (`ingest_stream`'s `report`):
    counted here, not kept in `rejections`."""

    @property
    def rejected(self) -> int:
        """How many lines or events were quarantined."""
        return len(self.rejections) + self.reported

    def add(self, other: LoadResult) -> None:
        """Fold another batch's result into this one."""
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.rejections.extend(other.rejections)
        self.spooled += other.spooled
        self.parked += other.parked
        self.unparked += other.unparked
        self.reported += other.reported


def validate(
    items: Iterable[tuple[int, bytes, Item]], parse: Callable[[Item], Event]
) -> tuple[list[Candidate], list[Rejection]]:
    """Parse each numbered item (line number, original bytes, what `parse` takes).

    Return the valid ones as candidates and the others as rejections with their reason.
    """
    candidates: list[Candidate] = []
    rejections: list[Rejection] = []
    for number, raw, item in items:
        try:
            candidates.append(Candidate(parse(item), raw, number))
        except BadEventError as error:
            rejections.append(Rejection(str(error), raw, number))
    return candidates, rejections
