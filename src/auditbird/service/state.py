"""What every request handler shares: the store, the keys, the limits and the counters."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..actions import ActionRegistry
from ..async_log import AsyncAuditLog
from ..validation import DEFAULT_LIMITS, Limits
from .keys import KeyStore
from .limits import RateLimiter, ServiceLimits, TailBudget
from .metrics import Metrics
from .writer import GroupCommitStore

__all__ = ["ServiceState", "OFFLOAD_BYTES", "OFFLOAD_EVENTS"]

T = TypeVar("T")

# Above these, parsing and validating a request body runs in the CPU pool, not on the loop.
OFFLOAD_BYTES = 256 * 1024
OFFLOAD_EVENTS = 1_000


@dataclass
class ServiceState:
    store: GroupCommitStore
    keys: KeyStore
    registry: ActionRegistry
    limits: ServiceLimits = field(default_factory=ServiceLimits)
    event_limits: Limits = DEFAULT_LIMITS
    strict: bool = False
    metrics_token: str | None = None  # /metrics: open without it; token-only and per-workspace with it
    uid_secret: bytes = b""  # keys uids derived from Idempotency-Keys (see .server_secret)
    metrics: Metrics = field(default_factory=Metrics)
    limiter: RateLimiter = field(default_factory=RateLimiter)
    tails: TailBudget | None = None  # made from ``limits`` unless given

    def __post_init__(self) -> None:
        if self.tails is None:
            self.tails = TailBudget(self.limits.max_tails_per_key, self.limits.max_tails)

    _logs: dict[tuple[str, bool], AsyncAuditLog] = field(default_factory=dict, repr=False)
    # Two threads for CPU-bound request work (big bodies): apart from the store's threads, so a
    # flood of bad bodies queues here and never delays a commit.
    cpu_pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(2, thread_name_prefix="auditbird-cpu"), repr=False
    )

    async def offload(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` in the CPU pool; the event loop serves others meanwhile."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.cpu_pool, functools.partial(fn, *args, **kwargs))

    def log(self, workspace: str, *, strict: bool | None = None) -> AsyncAuditLog:
        """A log forced to the key's workspace: the library validates, fills defaults, encodes.

        Logs hold only their settings, so one per (workspace, strict) is kept and reused."""
        strict = self.strict if strict is None else strict
        found = self._logs.get((workspace, strict))
        if found is None:
            if len(self._logs) >= 1_024:
                self._logs.clear()
            found = self._logs[(workspace, strict)] = AsyncAuditLog(
                self.store,
                workspace=workspace,
                strict=strict,
                registry=self.registry,
                limits=self.event_limits,
            )
        return found

    def reader(self, workspace: str) -> AsyncAuditLog:
        """A log over the blocking store itself, for the viewer's reads past append/query (the
        chart's counts, live-tail polls): the group-commit wrapper only appends and queries.

        SQLite answers these on reader connections of its own, beside the writer (WAL), so a
        chart counting a million rows never holds up a commit or the API's next page."""
        return AsyncAuditLog(self.store.sync, workspace=workspace, registry=self.registry)
