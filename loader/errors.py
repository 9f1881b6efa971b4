"""The loader's errors: terminal ones (fix the input or the configuration) and transient ones."""

from __future__ import annotations


class LedgerError(Exception):
    """Base class of every error the loader raises."""


class ConfigurationError(LedgerError):
    """The connection settings or the environment are wrong; retrying will not help."""


class BadEventError(LedgerError):
    """An event breaks the run-event contract; the message names the field (None: the line)."""

    def __init__(self, field: str | None, reason: str) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.field = field
        self.reason = reason


class RejectedEventsError(LedgerError):
    """Some events of a call were rejected; the good ones beside them were stored."""

    def __init__(self, rejections: list[str]) -> None:
        super().__init__("; ".join(rejections))
        self.rejections = rejections


class TransientError(LedgerError):
    """The database could not be reached or failed mid-call; the same call may succeed later."""
