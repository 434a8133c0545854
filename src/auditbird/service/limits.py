"""Request limits: body sizes (413) and a token bucket per API key (429 with Retry-After)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["ServiceLimits", "RateLimiter", "TailBudget"]

MiB = 1024 * 1024


@dataclass(frozen=True)
class ServiceLimits:
    """Every limit the service enforces beyond the library's own (metadata sizes, ``limit``)."""

    max_request_bytes: int = 10 * MiB
    max_event_bytes: int = 1 * MiB
    # Events in one request: validating costs time and memory per event, whatever their size.
    max_events_per_request: int = 10_000
    # Requests per second per key, for keys created without their own ``--rate``; 0: unlimited.
    default_rate: float = 1_000.0
    # How many requests a key may send at once above its rate (bucket size), in seconds of rate.
    burst_seconds: float = 2.0
    max_page: int = 1_000
    # Live tails (`/v1/stream`) open at once: each polls the store twice a second.
    max_tails_per_key: int = 5
    max_tails: int = 100


class RateLimiter:
    """A token bucket per key: ``rate`` tokens a second, up to ``rate * burst_seconds`` saved."""

    def __init__(self, burst_seconds: float = 2.0) -> None:
        self.burst_seconds = burst_seconds
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill)
        self._lock = threading.Lock()

    def take(self, key: str, rate: float) -> float:
        """Spend one token: 0.0 if allowed, else the seconds to wait before a retry."""
        if rate <= 0:
            return 0.0
        capacity = max(1.0, rate * self.burst_seconds)
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (capacity, now))
            tokens = min(capacity, tokens + (now - last) * rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / rate

    @staticmethod
    def retry_after(wait: float) -> str:
        return str(max(1, math.ceil(wait)))


class TailBudget:
    """How many live tails are open, per key and in all; a claim beyond either cap is refused.

    A claim returns a release function that is safe to call more than once (the stream's end
    and the response's clean-up both call it, whichever runs)."""

    def __init__(self, per_key: int, total: int) -> None:
        self.per_key = per_key
        self.total = total
        self._open: dict[str, int] = {}
        self._lock = threading.Lock()

    def claim(self, key_id: str) -> Callable[[], None] | str:
        """A release function, or the reason for refusing (a sentence for the 429)."""
        with self._lock:
            if sum(self._open.values()) >= self.total:
                return f"the server has {self.total} live tails open, its most; retry later"
            if self._open.get(key_id, 0) >= self.per_key:
                return (
                    f"this credential has {self.per_key} live tails per key open already; "
                    "close one (or reuse one with wider filters)"
                )
            self._open[key_id] = self._open.get(key_id, 0) + 1
        released = False

        def release() -> None:
            nonlocal released
            with self._lock:
                if released:
                    return
                released = True
                left = self._open.get(key_id, 0) - 1
                if left > 0:
                    self._open[key_id] = left
                else:
                    self._open.pop(key_id, None)

        return release

    def open_count(self) -> int:
        with self._lock:
            return sum(self._open.values())
