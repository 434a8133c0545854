"""Fault mode and rate limits: the 429s and 503s a real Tinybird answers, on demand.

``fail_rate`` answers that fraction of API requests with a failure (alternately 503 and 429,
both with ``Retry-After``), drawn from a seeded RNG so a run is reproducible. ``throttle``
allows N requests per second per datasource (or pipe) in fixed one-second windows and answers
429 beyond that, with the ``X-RateLimit-*`` headers Tinybird sends.
"""

from __future__ import annotations

import math
import random
import threading
import time

__all__ = ["Faults", "Verdict"]


class Verdict:
    __slots__ = ("status", "message", "headers")

    def __init__(self, status: int, message: str, headers: dict[str, str]) -> None:
        self.status = status
        self.message = message
        self.headers = headers


class Faults:
    def __init__(
        self,
        fail_rate: float = 0.0,
        throttle: int | None = None,
        retry_after: int = 1,
        seed: int = 0,
    ) -> None:
        if not 0.0 <= fail_rate <= 1.0:
            raise ValueError(f"fail rate must be between 0 and 1, not {fail_rate}")
        if throttle is not None and throttle < 1:
            raise ValueError(f"throttle must be at least 1 request/s, not {throttle}")
        self.fail_rate = fail_rate
        self.throttle = throttle
        self.retry_after = max(0, int(retry_after))
        self._rng = random.Random(seed)
        self._failures = 0
        self._windows: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def injected(self) -> Verdict | None:
        """A failure to answer instead of the request, in fault mode."""
        if self.fail_rate <= 0.0:
            return None
        with self._lock:
            if self._rng.random() >= self.fail_rate:
                return None
            self._failures += 1
            odd = self._failures % 2 == 1
        headers = {"Retry-After": str(self.retry_after)}
        if odd:
            return Verdict(503, "Service temporarily unavailable, retry", headers)
        limit = self.throttle or 100
        headers |= {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(max(1, self.retry_after)),
        }
        return Verdict(429, "Too many requests", headers)

    def limit(self, key: str) -> tuple[Verdict | None, dict[str, str]]:
        """(a 429 if over the limit, the rate-limit headers to send either way)."""
        if self.throttle is None:
            return None, {}
        now = time.monotonic()
        window = math.floor(now)
        with self._lock:
            start, count = self._windows.get(key, (window, 0))
            if start != window:
                start, count = window, 0
            count += 1
            self._windows[key] = (start, count)
        reset = max(1, math.ceil(start + 1 - now))
        headers = {
            "X-RateLimit-Limit": str(self.throttle),
            "X-RateLimit-Remaining": str(max(0, self.throttle - count)),
            "X-RateLimit-Reset": str(reset),
        }
        if count > self.throttle:
            headers["Retry-After"] = str(reset)
            return Verdict(429, "Too many requests", headers), headers
        return None, headers
