"""Prometheus metrics: requests by route and status, latency, events written and read, store errors.

Kept by ``prometheus_client`` (its counters, histogram and text exposition), in registries of
each app's own (two apps in one process never share counts). An open ``/metrics`` must not tell
one tenant anything about another, and every figure a request moves does: a scraper watching
``auditbird_http_requests_total{route="/v1/events",status="201"}`` sees another tenant publish,
the ``/v1/streams`` series sees it add a stream, a 429 count sees it hit its rate. So open
``/metrics`` shows only what no request moves: ``auditbird_build_info{version}`` (always 1: a
scrape that answers says the process is up). Everything else is in a second registry, rendered
only for a caller holding the metrics token (``serve --metrics-token`` /
``AUDITBIRD_METRICS_TOKEN``); see :mod:`.app`: requests by method, route template and status,
latency by route, store errors (counted when a request finds the store down, so they move with
requests too), requests refused 429, and events written and read (in total, and by workspace).

Log streams follow the same rule. The token's holder gets totals over every stream, with no
label: ``auditbird_streams``, ``auditbird_streams_events_behind``,
``auditbird_streams_seconds_behind`` (the most behind), ``auditbird_streams_delivery_failures``,
``auditbird_streams_dead_letters``; and each stream's, labelled ``workspace`` and ``stream``:
``auditbird_stream_events_behind``, ``auditbird_stream_seconds_behind``,
``auditbird_stream_delivery_failures_total``, ``auditbird_stream_dead_lettered_total``,
``auditbird_stream_dead_letters`` and ``auditbird_stream_paused``. Streams are delivered by
another process (``auditbird streams run``); these figures are read from its records at most
every :data:`STREAMS_TTL` seconds, on a thread, never on a scrape's event loop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__

__all__ = ["Metrics", "MetricsMiddleware"]

# Distinct workspaces counted one by one; any beyond are summed under one label, so a flood of
# workspace names cannot grow the process or the scrape without bound.
MAX_WORKSPACES = 1_000
OTHER_WORKSPACES = "(others)"

STREAMS_TTL = 10.0  # seconds a reading of the streams' status is served before a new one
MAX_STREAM_SERIES = 1_000  # streams labelled one by one (token holders); beyond, totals only

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """One app's counters. ``add(name, n, workspace=...)`` counts ``events_written``,
    ``events_read``, ``store_errors`` or ``rate_limited``; ``observe`` times a request."""

    def __init__(self) -> None:
        # Open to anyone: nothing in it may move with a request (see the module's doc).
        self.registry = CollectorRegistry(auto_describe=True)
        # Everything a tenant's request moves: the metrics token's holder only.
        self.workspace_registry = CollectorRegistry(auto_describe=True)
        Gauge(
            "auditbird_build_info",
            "The running version (always 1). Requests, latency, store errors, 429s and events "
            "are shown to the metrics token's holder only: serve --metrics-token.",
            ("version",),
            registry=self.registry,
        ).labels(__version__).set(1)
        self.requests = Counter(
            "auditbird_http_requests",
            "HTTP requests by method, route template and status.",
            ("method", "route", "status"),
            registry=self.workspace_registry,
        )
        self.latency = Histogram(
            "auditbird_http_request_duration_seconds",
            "Time to answer, by route template.",
            ("route",),
            buckets=BUCKETS,
            registry=self.workspace_registry,
        )
        # Each moves with the tenants' requests: token holders only (see the module's doc).
        self._counters = {
            name: Counter(f"auditbird_{name}", help_text, registry=registry)
            for name, help_text, registry in (
                ("events_written", "Events accepted and stored.", self.workspace_registry),
                ("events_read", "Events returned or exported.", self.workspace_registry),
                ("store_errors", "Store failures (answered 503).", self.workspace_registry),
                ("rate_limited", "Requests answered 429.", self.workspace_registry),
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

    def watch_streams(self, read: Callable[[], list[Any]]) -> None:
        """Expose log streams' lag and failures; ``read()`` -> the :class:`StreamStatus` of
        every stream (it may take a while: it runs on a thread)."""
        snapshot = StreamSnapshot(read)
        # Even label-free totals tell one tenant of another's streams: token holders only.
        self.workspace_registry.register(_StreamTotals(snapshot))
        self.workspace_registry.register(_StreamSeries(snapshot))

    def render(self, *, per_workspace: bool = False) -> str:
        """The exposition text; ``per_workspace`` adds every figure a tenant's request or stream
        moves (token holders only)."""
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


class StreamSnapshot:
    """The latest reading of the streams' status, refreshed on a thread when older than
    :data:`STREAMS_TTL`: a scrape answers at once with what was last read (the very first one
    waits a little for a first reading)."""

    def __init__(self, read: Callable[[], list[Any]], ttl: float = STREAMS_TTL) -> None:
        self._read = read
        self.ttl = ttl
        self._value: list[Any] | None = None
        self._at = 0.0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def get(self) -> list[Any]:
        with self._lock:
            stale = time.monotonic() - self._at >= self.ttl
            if stale and (self._thread is None or not self._thread.is_alive()):
                self._thread = threading.Thread(
                    target=self._refresh, name="auditbird-stream-metrics", daemon=True
                )
                self._thread.start()
            thread, first = self._thread, self._value is None
        if first and thread is not None:
            thread.join(5.0)
        return self._value or []

    def _refresh(self) -> None:
        try:
            value = self._read()
        except Exception:  # an unreadable streams file: the figures stay as they were
            value = self._value or []
        with self._lock:
            self._value, self._at = value, time.monotonic()


class _StreamTotals:
    """Totals over every stream, no workspace, no stream name (token holders only)."""

    def __init__(self, snapshot: StreamSnapshot) -> None:
        self.snapshot = snapshot

    def describe(self) -> Iterator[Metric]:
        # Registering asks for the names; without this it would collect (read the streams).
        return self._families([])

    def collect(self) -> Iterator[Metric]:
        return self._families(self.snapshot.get())

    def _families(self, statuses: list[Any]) -> Iterator[Metric]:
        yield GaugeMetricFamily("auditbird_streams", "Log streams configured.", value=len(statuses))
        yield GaugeMetricFamily(
            "auditbird_streams_events_behind",
            "Events committed and not yet delivered, summed over every stream.",
            value=sum(s.events_behind for s in statuses),
        )
        yield GaugeMetricFamily(
            "auditbird_streams_seconds_behind",
            "Age of the oldest event a stream has yet to deliver, the largest over every stream.",
            value=max((s.seconds_behind for s in statuses), default=0.0),
        )
        yield GaugeMetricFamily(
            "auditbird_streams_delivery_failures",
            "Failed delivery attempts, summed over the streams configured now.",
            value=sum(s.stream.failures for s in statuses),
        )
        yield GaugeMetricFamily(
            "auditbird_streams_dead_letters",
            "Dead letters waiting for a replay, summed over every stream.",
            value=sum(s.stream.dead_letters for s in statuses),
        )


class _StreamSeries:
    """The token holders' figures: one series per stream, labelled workspace and stream."""

    def __init__(self, snapshot: StreamSnapshot) -> None:
        self.snapshot = snapshot

    def describe(self) -> Iterator[Metric]:
        return self._families([])

    def collect(self) -> Iterator[Metric]:
        return self._families(self.snapshot.get())

    def _families(self, statuses: list[Any]) -> Iterator[Metric]:
        labels = ["workspace", "stream"]
        families: dict[str, Any] = {
            "behind": GaugeMetricFamily(
                "auditbird_stream_events_behind", "Events committed and not yet delivered.", labels=labels
            ),
            "seconds": GaugeMetricFamily(
                "auditbird_stream_seconds_behind",
                "Age of the oldest event not yet delivered (by its timestamp).",
                labels=labels,
            ),
            "failures": CounterMetricFamily(
                "auditbird_stream_delivery_failures", "Failed delivery attempts.", labels=labels
            ),
            "dead_lettered": CounterMetricFamily(
                "auditbird_stream_dead_lettered", "Events turned into dead letters.", labels=labels
            ),
            "dead_letters": GaugeMetricFamily(
                "auditbird_stream_dead_letters", "Dead letters waiting for a replay.", labels=labels
            ),
            "paused": GaugeMetricFamily("auditbird_stream_paused", "1 while paused.", labels=labels),
        }
        for status in statuses[:MAX_STREAM_SERIES]:
            s = status.stream
            values = [s.workspace, s.name]
            families["behind"].add_metric(values, status.events_behind)
            families["seconds"].add_metric(values, status.seconds_behind)
            families["failures"].add_metric(values, s.failures)
            families["dead_lettered"].add_metric(values, s.dead_lettered)
            families["dead_letters"].add_metric(values, s.dead_letters)
            families["paused"].add_metric(values, 1 if s.paused else 0)
        yield from families.values()
