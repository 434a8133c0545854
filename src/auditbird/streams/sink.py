"""What a log stream delivers to: a sink takes a batch of rows, or raises :class:`DeliveryError`.

A sink returns only once the receiver has what it was sent (an HTTP 2xx, bytes handed to the
syslog connection, lines fsynced to a file). It says whether a failure is worth retrying:
``permanent`` failures (a webhook answering 4xx) become dead letters after the stream's
``max_attempts``; transient ones (a receiver down, a connection closed) are retried with
backoff until the receiver comes back, so an outage delays a stream but never skips an event.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ..row import Row

__all__ = ["Sink", "DeliveryError"]


class DeliveryError(Exception):
    """A batch the receiver did not take; ``permanent`` when retrying cannot help.

    ``delivered``: how many rows at the head of the batch the receiver did take before the
    failure (a sink sending one request per event); ``refused``: how many rows after those the
    refusal is about (1 for one event's request; None for all the rest)."""

    def __init__(
        self, message: str, *, permanent: bool = False, delivered: int = 0, refused: int | None = None
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.delivered = delivered
        self.refused = refused


class Sink(Protocol):
    def deliver(self, rows: Sequence[Row]) -> None:
        """Hand ``rows`` (in commit order) to the receiver; raise :class:`DeliveryError` if not taken."""
        ...

    def close(self) -> None: ...
