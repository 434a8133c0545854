"""Prometheus text exposition: requests by route and status, latency, events written, store errors.

Hand-rolled (a few counters need no dependency). The figures everyone may see carry no
workspace and no key: an open ``/metrics`` must not tell one tenant anything about another.
Per-workspace counts (events written and read) are rendered only for a caller holding the
metrics token (``serve --metrics-token`` / ``AUDITBIRD_METRICS_TOKEN``); see :mod:`.app`.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import defaultdict
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["Metrics", "MetricsMiddleware"]

# Distinct workspaces counted one by one; any beyond are summed under one label, so a flood of
# workspace names cannot grow the process or the scrape without bound.
MAX_WORKSPACES = 1_000
OTHER_WORKSPACES = "(others)"

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.latency: dict[str, list[int]] = {}
        self.latency_sum: dict[str, float] = defaultdict(float)
        self.latency_count: dict[str, int] = defaultdict(int)
        self.events_written = 0
        self.events_read = 0
        self.store_errors = 0
        self.rate_limited = 0
        # (counter name, workspace) -> count; rendered only with the metrics token
        self.by_workspace: dict[tuple[str, str], int] = defaultdict(int)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(method, route, status)] += 1
            counts = self.latency.get(route)
            if counts is None:
                counts = self.latency[route] = [0] * (len(BUCKETS) + 1)
            counts[bisect.bisect_left(BUCKETS, seconds)] += 1
            self.latency_sum[route] += seconds
            self.latency_count[route] += 1

    def add(self, name: str, n: int = 1, *, workspace: str | None = None) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + n)
            if workspace is not None:
                key = (name, workspace)
                if key not in self.by_workspace and len(self.by_workspace) >= 2 * MAX_WORKSPACES:
                    key = (name, OTHER_WORKSPACES)
                self.by_workspace[key] += n

    def render(self, *, per_workspace: bool = False) -> str:
        """The exposition text; ``per_workspace`` adds figures by workspace (token holders only)."""
        with self._lock:
            lines = [
                "# HELP auditbird_http_requests_total HTTP requests by method, route template and status.",
                "# TYPE auditbird_http_requests_total counter",
            ]
            for (method, route, status), n in sorted(self.requests.items()):
                lines.append(
                    f'auditbird_http_requests_total{{method="{method}",route="{_esc(route)}",'
                    f'status="{status}"}} {n}'
                )
            lines += [
                "# HELP auditbird_http_request_duration_seconds Time to answer, by route template.",
                "# TYPE auditbird_http_request_duration_seconds histogram",
            ]
            for route, counts in sorted(self.latency.items()):
                label = f'route="{_esc(route)}"'
                running = 0
                for bound, n in zip((*BUCKETS, float("inf")), counts, strict=True):
                    running += n
                    le = "+Inf" if bound == float("inf") else repr(bound)
                    lines.append(
                        f'auditbird_http_request_duration_seconds_bucket{{{label},le="{le}"}} {running}'
                    )
                lines.append(
                    f"auditbird_http_request_duration_seconds_sum{{{label}}} {self.latency_sum[route]}"
                )
                lines.append(
                    f"auditbird_http_request_duration_seconds_count{{{label}}} {self.latency_count[route]}"
                )
            for name, kind, help_text, value in (
                (
                    "auditbird_events_written_total",
                    "counter",
                    "Events accepted and stored.",
                    self.events_written,
                ),
                ("auditbird_events_read_total", "counter", "Events returned or exported.", self.events_read),
                (
                    "auditbird_store_errors_total",
                    "counter",
                    "Store failures (answered 503).",
                    self.store_errors,
                ),
                ("auditbird_rate_limited_total", "counter", "Requests answered 429.", self.rate_limited),
            ):
                lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name} {value}"]
            if per_workspace:
                lines += self._render_workspaces()
        return "\n".join(lines) + "\n"

    def _render_workspaces(self) -> list[str]:
        lines = []
        for counter in ("events_written", "events_read"):
            name = f"auditbird_workspace_{counter}_total"
            lines += [
                f"# HELP {name} {counter.replace('_', ' ').capitalize()}, by workspace.",
                f"# TYPE {name} counter",
            ]
            for (kind, workspace), n in sorted(self.by_workspace.items()):
                if kind == counter:
                    lines.append(f'{name}{{workspace="{_esc(workspace)}"}} {n}')
        return lines


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


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
