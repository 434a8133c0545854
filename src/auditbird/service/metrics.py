"""Prometheus metrics: requests by route and status, latency, events written and read, store errors.

Kept by ``prometheus_client`` (its counters, histogram and text exposition), in a registry of
each app's own (two apps in one process never share counts). The figures everyone may see
carry no workspace and no key: an open ``/metrics`` must not tell one tenant anything about
another. Per-workspace counts (events written and read) are in a second registry, rendered
only for a caller holding the metrics token (``serve --metrics-token`` /
``AUDITBIRD_METRICS_TOKEN``); see :mod:`.app`.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["Metrics", "MetricsMiddleware"]

# Distinct workspaces counted one by one; any beyond are summed under one label, so a flood of
# workspace names cannot grow the process or the scrape without bound.
MAX_WORKSPACES = 1_000
OTHER_WORKSPACES = "(others)"

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """One app's counters. ``add(name, n, workspace=...)`` counts ``events_written``,
    ``events_read``, ``store_errors`` or ``rate_limited``; ``observe`` times a request."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.workspace_registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "auditbird_http_requests",
            "HTTP requests by method, route template and status.",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "auditbird_http_request_duration_seconds",
            "Time to answer, by route template.",
            ("route",),
            buckets=BUCKETS,
            registry=self.registry,
        )
        self._counters = {
            name: Counter(f"auditbird_{name}", help_text, registry=self.registry)
            for name, help_text in (
                ("events_written", "Events accepted and stored."),
                ("events_read", "Events returned or exported."),
                ("store_errors", "Store failures (answered 503)."),
                ("rate_limited", "Requests answered 429."),
            )
        }
        self._by_workspace = {
            name: Counter(
                f"auditbird_workspace_{name}",
                f"{name.replace('_', ' ').capitalize()}, by workspace.",
                ("workspace",),
                registry=self.workspace_registry,
            )
            for name in ("events_written", "events_read")
        }
        self._children: dict[tuple[str, str, int], Any] = {}  # bounded: route templates only
        self._timers: dict[str, Any] = {}
        # (counter, workspace) -> its child, at most 2 * MAX_WORKSPACES of them
        self._workspaces: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count a request and its time by route template (never the raw path)."""
        # Each labelled child is made once: ``labels()`` checks its arguments (~4 µs) on every call.
        counter = self._children.get((method, route, status))
        if counter is None:
            counter = self._children[(method, route, status)] = self.requests.labels(
                method, route, str(status)
            )
        timer = self._timers.get(route)
        if timer is None:
            timer = self._timers[route] = self.latency.labels(route)
        counter.inc()
        timer.observe(seconds)

    def add(self, name: str, n: int = 1, *, workspace: str | None = None) -> None:
        """Add ``n`` to the counter ``name`` (and to the workspace's, if one is given)."""
        self._counters[name].inc(n)
        if workspace is None or name not in self._by_workspace:
            return
        child = self._workspaces.get((name, workspace))
        if child is None:
            with self._lock:
                if len(self._workspaces) >= 2 * MAX_WORKSPACES:
                    child = self._by_workspace[name].labels(OTHER_WORKSPACES)
                else:
                    child = self._workspaces[(name, workspace)] = self._by_workspace[name].labels(workspace)
        child.inc(n)

    def render(self, *, per_workspace: bool = False) -> str:
        """The exposition text; ``per_workspace`` adds figures by workspace (token holders only)."""
        text = generate_latest(self.registry)
        if per_workspace:
            text += generate_latest(self.workspace_registry)
        return text.decode()


class MetricsMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware): times each request and counts it by route template."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route: Any = scope.get("route")
            # Templates (`/v1/events/{uid}`), never raw paths: bounded label cardinality.
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.observe(scope["method"], template, status, time.perf_counter() - start)
