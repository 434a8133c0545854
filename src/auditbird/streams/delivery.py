"""Delivering a log stream: the outbox relay's loop, with a sink as its destination.

A stream is a :class:`~auditbird.relay.Relay` from the store to a :class:`StreamDestination`:
the relay reads committed rows in commit order, hands each batch to the destination, and
saves its position (``stream:<id>`` in the store's relay-position table) only after the
destination returned. So delivery is at least once and in commit order, and a runner killed
mid-batch resumes at the first batch not acknowledged (its first batch after a restart is in
doubt and is delivered again). The destination keeps the stream's workspace and filter,
retries with backoff, and turns a batch refused ``max_attempts`` times into dead letters so
the stream moves on without skipping anything silently.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..erasure.erase import keys_for_store, keys_for_url
from ..erasure.seal import open_row
from ..query import Query
from ..relay import Relay
from ..row import Row
from .config import Stream, StreamRegistry
from .egress import EgressPolicy
from .ndjson_file import NdjsonFileSink
from .otlp import OtlpLogsSink
from .sink import DeliveryError, Sink
from .syslog import SyslogSink
from .webhook import WebhookSink

__all__ = ["StreamDestination", "StreamRunner", "open_sink", "replay_dead_letters", "Backoff"]


class Backoff:
    """Exponential backoff with full jitter, capped: ``base * 2**(attempt-1)`` up to ``cap`` seconds."""

    def __init__(self, base: float = 0.5, cap: float = 30.0) -> None:
        self.base, self.cap = base, cap

    def delay(self, attempt: int) -> float:
        return random.uniform(0, min(self.cap, self.base * 2 ** min(attempt - 1, 30)))  # noqa: S311


def open_sink(stream: Stream) -> Sink:
    o = stream.options
    # Streams added over the API connect only where AUDITBIRD_STREAM_HOSTS allows (egress.py),
    # checked at every connection, whenever they were added (their stored origin, not a mark
    # older rows lack); the operator's own (CLI) streams are not restricted.
    egress = EgressPolicy.from_env() if stream.restricted else None
    if stream.kind == "webhook":
        return WebhookSink(
            o["url"],
            secret=o["secret"],
            batched=bool(o.get("batched", False)),
            old_secret=o.get("old_secret"),
            old_secret_until=o.get("old_secret_until"),
            egress=egress,
        )
    if stream.kind == "syslog":
        return SyslogSink(
            o["host"], int(o["port"]), tls=bool(o.get("tls")), ca_file=o.get("ca_file"), egress=egress
        )
    if stream.kind == "ndjson":
        return NdjsonFileSink(
            o["path"],
            max_bytes=int(o.get("max_bytes", 100 * 1024 * 1024)),
            keep=int(o.get("keep", 5)),
            rotate_every=int(o["rotate_every"]) if o.get("rotate_every") else None,
        )
    if stream.kind == "otlp":
        return OtlpLogsSink(o["url"], headers=o.get("secret_headers"), egress=egress)
    raise ValueError(f"stream {stream.name!r} has an unknown kind {stream.kind!r}")


class StreamStopped(Exception):
    """The runner was asked to stop while a batch waited for a retry (the batch stays in doubt)."""


class StreamDestination:
    """A relay destination that delivers to a sink: filters, retries, dead letters.

    It answers the relay's "which uids of the in-doubt batch already arrived?" with *none*:
    a sink cannot be asked, so the in-doubt batch is delivered again (at least once)."""

    def __init__(
        self,
        stream: Stream,
        sink: Sink,
        registry: StreamRegistry,
        *,
        backoff: Backoff | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.stream = stream
        self.sink = sink
        self.registry = registry
        self.backoff = backoff or Backoff()
        self.stop = stop or threading.Event()

    def stored_uids(self, workspace: str, uids: Sequence[str]) -> set[str]:
        return set()

    def append(self, rows: Sequence[Row]) -> None:
        chosen = [r for r in rows if r.workspace == self.stream.workspace and self.stream.filter.matches(r)]
        if chosen:
            self.deliver(chosen)

    def deliver(self, rows: list[Row]) -> None:
        pending = rows
        refused = 0
        attempt = 0
        while pending:
            attempt += 1
            try:
                # Receivers get personal values in the clear (a SIEM cannot read ciphertext), or
                # [erased] once the subject is erased; what this process keeps (dead letters)
                # stays sealed. docs/erasure.md: copies a receiver made before an erasure stay.
                self.sink.deliver([open_row(r) for r in pending])
            except DeliveryError as exc:
                if exc.delivered:
                    self.registry.record_delivery(self.stream.id, exc.delivered)
                    pending = pending[exc.delivered :]
                    refused = attempt = 0  # progress: the count starts again for the next event
                self.registry.record_failure(self.stream.id, str(exc))
                if exc.permanent:
                    refused += 1
                    if refused >= self.stream.max_attempts:
                        # Only what the refusal is about becomes a dead letter; the rest goes on.
                        dead = pending[: exc.refused] if exc.refused else pending
                        self.registry.dead_letter(self.stream.id, dead, str(exc), refused)
                        pending = pending[len(dead) :]
                        refused = attempt = 0
                        continue
                if self.stop.wait(self.backoff.delay(max(attempt, 1))):
                    raise StreamStopped(f"stream {self.stream.name!r} stopped while retrying: {exc}") from exc
                continue
            self.registry.record_delivery(self.stream.id, len(pending))
            return

    def query(self, query: Query) -> list[Row]:  # the relay's Store shape; never used for sinks
        return []

    def close(self) -> None:
        self.sink.close()


class StreamRunner:
    """Runs streams of a SQLite store, one thread each, until caught up or stopped.

    ``run(follow=True)`` keeps delivering new commits; stop it with ``stop.set()`` (the CLI does
    on SIGINT/SIGTERM). While it follows, it reads the streams again every ``reload_interval``
    seconds: a stream added starts, a stream removed stops, a stream changed (a rotated secret)
    restarts at its stored position."""

    def __init__(
        self,
        store_url: str,
        *,
        workspace: str | None = None,
        names: Sequence[str] = (),
        batch: int = 100,
        backoff: Backoff | None = None,
        stop: threading.Event | None = None,
        reload_interval: float = 2.0,
    ) -> None:
        self.store_url = store_url
        self.registry = StreamRegistry.for_store(store_url)
        self.workspace = workspace
        self.names = tuple(names)
        if names:
            missing = set(names) - {s.name for s in self.registry.list(workspace)}
            if missing:
                raise KeyError(f"no stream named {', '.join(sorted(missing))}; see `auditbird streams list`")
        self.streams = self._configured()
        self.batch = batch
        self.backoff = backoff or Backoff()
        self.stop = stop or threading.Event()
        self.reload_interval = reload_interval
        self.errors: dict[str, BaseException] = {}

    def _configured(self) -> list[Stream]:
        """The streams to deliver now: paused ones are left out (a following runner stops them)."""
        streams = [s for s in self.registry.list(self.workspace) if not s.paused]
        return [s for s in streams if s.name in self.names] if self.names else streams

    def run(
        self,
        *,
        follow: bool = False,
        poll_interval: float = 0.2,
        on_batch: Callable[[Stream, int, int], None] | None = None,
    ) -> int:
        totals: dict[int, int] = {}
        running: dict[int, tuple[Stream, threading.Thread, threading.Event]] = {}

        def start(stream: Stream) -> None:
            stop = threading.Event()
            thread = threading.Thread(
                target=self._run_one,
                args=(stream, follow, poll_interval, on_batch, totals, stop),
                name=f"stream-{stream.name}",
            )
            running[stream.id] = (stream, thread, stop)
            thread.start()

        for stream in self.streams:
            start(stream)
        last_reload = time.monotonic()
        while any(t.is_alive() for _, t, _ in running.values()) or (follow and not self.stop.is_set()):
            if self.stop.wait(0.05):
                break
            if follow and time.monotonic() - last_reload >= self.reload_interval:
                last_reload = time.monotonic()
                self._reload(running, start)
        for _, _, stop in running.values():
            stop.set()
        for _, thread, _ in running.values():
            thread.join()
        return sum(totals.values())

    def _reload(
        self,
        running: dict[int, tuple[Stream, threading.Thread, threading.Event]],
        start: Callable[[Stream], None],
    ) -> None:
        current = {s.id: s for s in self._configured()}
        for stream_id, (old, thread, stop) in list(running.items()):
            new = current.get(stream_id)
            if new is None or _settings(new) != _settings(old):
                stop.set()  # removed, or changed: it restarts below at its stored position
                thread.join()
                del running[stream_id]
        for stream_id, stream in current.items():
            if stream_id not in running:
                start(stream)
        self.streams = [s for s, _, _ in running.values()]

    def _run_one(
        self,
        stream: Stream,
        follow: bool,
        poll_interval: float,
        on_batch: Callable[[Stream, int, int], None] | None,
        totals: dict[int, int],
        stop: threading.Event,
    ) -> None:
        registry = StreamRegistry(self.registry.path)  # a connection per thread
        try:
            destination = StreamDestination(
                stream, open_sink(stream), registry, backoff=self.backoff, stop=stop
            )
            with Relay(self.store_url, destination, name=stream.position_name, batch=self.batch) as relay:
                # Held for the run: the key ring keeps a store's subject keys only while in use.
                subject_keys = keys_for_store(relay.source)  # noqa: F841
                callback: Any = (lambda n, pos: on_batch(stream, n, pos)) if on_batch else None
                totals[stream.id] = totals.get(stream.id, 0) + relay.run(
                    follow=follow, poll_interval=poll_interval, stop=stop, on_batch=callback
                )
        except StreamStopped:
            pass
        except BaseException as exc:  # one broken stream must not stop the others
            self.errors[stream.name] = exc
            registry.record_failure(stream.id, f"{type(exc).__name__}: {exc}")
        finally:
            registry.close()

    def pending(self) -> dict[str, int]:
        """Per stream: committed events (of every workspace) not yet past its position."""
        out = {}
        for s in self.streams:
            with Relay(self.store_url, _Nowhere(), name=s.position_name) as relay:
                out[s.name] = relay.pending()
        return out

    def close(self) -> None:
        self.registry.close()


def _settings(stream: Stream) -> tuple[Any, ...]:
    return (stream.kind, stream.options, stream.filter, stream.max_attempts)


class _Nowhere:
    """A destination for reading a stream's position without delivering."""

    def append(self, rows: Sequence[Row]) -> None:
        raise RuntimeError("not a delivery")

    def query(self, query: Query) -> list[Row]:
        return []

    def close(self) -> None:
        pass


def replay_dead_letters(
    registry: StreamRegistry, stream: Stream, *, limit: int = 1_000, store_url: str | None = None
) -> tuple[int, str | None]:
    """Deliver a stream's dead letters again, oldest first; each delivered one is forgotten.

    ``store_url`` (the stream's store) opens its subject keys, so personal values reach the
    receiver readable, as on first delivery; without it sealed values go as ``[erased]``.
    Stops at the first refusal (it stays dead-lettered) and returns ``(replayed, error)``."""
    sink = open_sink(stream)
    replayed = 0
    # Only the subject keys: the dead letters hold the events, the store itself is not needed.
    subject_keys = keys_for_url(store_url) if store_url else None  # held while replaying
    try:
        for letter in registry.dead_letters(stream.id, limit):
            try:
                sink.deliver([open_row(letter.row)])
            except DeliveryError as exc:
                registry.record_failure(stream.id, str(exc))
                return replayed, str(exc)
            registry.forget_dead_letters([letter.id])
            registry.record_delivery(stream.id, 1)  # it arrived: counted, and the last error cleared
            replayed += 1
    finally:
        sink.close()
        del subject_keys
    return replayed, None
