"""Projections: fold a stream's events into state, one handler per action.

    class MonitorState(Projection):
        status: str = "unknown"

        @on("monitor.down", "monitor.failed")
        def _down(self, event: Event) -> None:
            self.status = "down"          # event.metadata is the action's typed model

    state = log.project("monitor:1", MonitorState)            # now
    state = log.project("monitor:1", MonitorState, as_of="2026-01-31T02:00:00Z")

A projection is a pydantic model, so its state serialises for snapshots and APIs. Its *code
version* (the explicit ``__projection_version__``, the fields, the handlers' bytecode and the
schema versions of the actions they handle) keys its snapshots: change any of them and old
snapshots are ignored instead of resurrecting state the new code would not have produced.
"""

from __future__ import annotations

import hashlib
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, PrivateAttr

from ._errors import ProjectionError
from ._ops import Call, Op, Supports
from .actions import ActionRegistry
from .codec import decode
from .event import Event
from .history import PAGE_SIZE, StreamWalk
from .row import Row
from .snapshots import Snapshot
from .stores.capabilities import SnapshotStoreTier, read_erasure_generation

__all__ = ["Projection", "on", "ProjectionError", "project_op", "fold_rows"]

P = TypeVar("P", bound="Projection")
H = TypeVar("H", bound=Callable[..., Any])
_HANDLES = "__auditbird_handles__"


def on(*actions: str) -> Callable[[H], H]:
    """Method decorator: handle these actions. ``handler(self, event)`` mutates ``self``."""
    if not actions:
        raise ValueError("@on needs at least one action, e.g. @on('monitor.down')")

    def decorate(fn: H) -> H:
        setattr(fn, _HANDLES, (*getattr(fn, _HANDLES, ()), *actions))
        return fn

    return decorate


class Projection(BaseModel):
    """State folded from one stream. Every field needs a default: the state before any event.

    Class options: ``__projection_version__`` (bump to drop snapshots by hand; code changes
    drop them anyway), ``__projection_name__`` (the snapshot key; default module.qualname),
    ``snapshot_every`` (replaying this many events or more saves a snapshot).
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=False)

    __projection_version__: ClassVar[int] = 1
    __projection_name__: ClassVar[str | None] = None
    snapshot_every: ClassVar[int] = 1_000
    _handlers: ClassVar[dict[str, Callable[[Any, Event], None]]] = {}
    _fingerprint: ClassVar[str | None] = None

    _revision: int = PrivateAttr(default=0)
    _position: int | None = PrivateAttr(default=None)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        handlers: dict[str, Callable[[Any, Event], None]] = {}
        for klass in reversed(cls.__mro__):  # subclasses override their bases' handlers
            for value in vars(klass).values():
                fn = getattr(value, "__func__", value)
                for name in getattr(fn, _HANDLES, ()):
                    handlers[name] = fn
        cls._handlers = handlers
        cls._fingerprint = None

    # -- what the fold left behind --------------------------------------------------------

    @property
    def revision(self) -> int:
        """How many of the stream's events were folded in: the ``expected_revision`` of the
        next write decided on this state (when projected without ``as_of``)."""
        return self._revision

    @property
    def position(self) -> int | None:
        """The commit position of the last event folded in (None before any, or without one)."""
        return self._position

    # -- folding --------------------------------------------------------------------------

    @classmethod
    def handled_actions(cls) -> frozenset[str]:
        """The actions this projection has handlers for."""
        return frozenset(cls._handlers)

    def apply(self, event: Event, position: int | None = None) -> None:
        """Fold one event in (events without a handler only count towards the revision)."""
        handler = self._handlers.get(event.action)
        if handler is not None:
            if event.schema_error is not None:
                raise ProjectionError(
                    f"{type(self).__name__} cannot apply event {event.uid} ({event.action}): "
                    f"{event.schema_error}; register an upcaster or fix the schema"
                )
            handler(self, event)
        self._revision += 1
        if position is not None:
            self._position = position

    @classmethod
    def replay(cls: type[P], events: Iterable[Event]) -> P:
        """The state after ``events`` (already in order), from a fresh instance."""
        state = cls()
        for event in events:
            state.apply(event)
        return state

    @classmethod
    def projection_name(cls) -> str:
        """The snapshot key: ``__projection_name__``, else ``module.qualname``."""
        return cls.__projection_name__ or f"{cls.__module__}.{cls.__qualname__}"

    @classmethod
    def code_version(cls, registry: ActionRegistry) -> str:
        """A fingerprint of the code that produces this state; keys the snapshots."""
        if cls._fingerprint is None:
            digest = hashlib.sha256()
            digest.update(str(cls.__projection_version__).encode())
            digest.update(repr(sorted(cls.model_json_schema().items())).encode())
            for name in sorted(cls._handlers):
                digest.update(name.encode())
                digest.update(_code_bytes(cls._handlers[name].__code__))
            cls._fingerprint = digest.hexdigest()[:16]
        versions = ",".join(f"{a}={registry.latest_version(a)}" for a in sorted(cls._handlers))
        return (
            f"{cls.__projection_version__}:{cls._fingerprint}:"
            + hashlib.sha256(versions.encode()).hexdigest()[:8]
        )


def _code_bytes(code: types.CodeType) -> bytes:
    parts = [code.co_code, repr(code.co_names).encode()]
    for const in code.co_consts:  # nested functions: their code, not their (per-run) address
        parts.append(_code_bytes(const) if isinstance(const, types.CodeType) else repr(const).encode())
    return b"\0".join(parts)


@dataclass
class FoldResult:
    """What one :func:`fold_rows` call did: events replayed, latest timestamp folded in."""

    replayed: int = 0
    max_timestamp: int = 0


def fold_rows(state: Projection, rows: Iterable[Row], registry: ActionRegistry) -> FoldResult:
    """The hot loop: rows whose action has no handler are counted but never decoded."""
    handlers = state._handlers
    result = FoldResult()
    revision = state._revision
    position = state._position
    max_ts = 0
    replayed = 0
    for row in rows:
        handler = handlers.get(row.action)
        if handler is not None:
            event = decode(row, registry)
            if event.schema_error is not None:
                state._revision, state._position = revision, position
                raise ProjectionError(
                    f"{type(state).__name__} cannot apply event {event.uid} ({event.action}) at "
                    f"position {row.position}: {event.schema_error}; register an upcaster or fix the schema"
                )
            handler(state, event)
        revision += 1
        replayed += 1
        position = row.position
        if row.timestamp > max_ts:
            max_ts = row.timestamp
    state._revision, state._position = revision, position
    result.replayed, result.max_timestamp = replayed, max_ts
    return result


def project_op(
    registry: ActionRegistry,
    workspace: str,
    event_id: str,
    cls: type[P],
    *,
    as_of: int | None = None,
    snapshots: bool = True,
    save_snapshot: bool | None = None,
    page_size: int = PAGE_SIZE,
) -> Op[P]:
    """The state of ``stream`` now (or ``as_of`` ms, inclusive), from the latest usable snapshot.

    ``snapshots``: use the store's snapshots when it keeps them (the snapshot tier).
    ``save_snapshot``: None saves one when ``cls.snapshot_every`` events or more were replayed,
    True always (when there is something to save), False never. Never for ``as_of`` folds.
    """
    code_version = cls.code_version(registry)
    name = cls.projection_name()
    keeps = snapshots and (yield Supports(SnapshotStoreTier))
    if save_snapshot and not keeps:
        yield Call(SnapshotStoreTier, lambda store: None)  # raises UnsupportedOperation, naming the store
    state: P | None = None
    after: int | None = None
    max_ts = 0
    generation: int | None = None
    if keeps:
        # Before any event is read: an erasure after this point makes the save store nothing
        # (this fold may read a subject's values in the clear before its key is destroyed).
        generation = yield Call(SnapshotStoreTier, lambda store: read_erasure_generation(store, workspace))
        snap: Snapshot | None = yield Call(
            SnapshotStoreTier, lambda store: store.load_snapshot(workspace, event_id, name, code_version)
        )
        # A snapshot holding an event later than as_of knows too much: replay from the start.
        if snap is not None and (as_of is None or snap.max_timestamp <= as_of):
            state = cls.model_validate_json(snap.state)
            state._revision, state._position = snap.revision, snap.position
            after, max_ts = snap.position, snap.max_timestamp
    if state is None:
        state = cls()
    walk = StreamWalk(
        workspace,
        event_id,
        after_position=after,
        until=None if as_of is None else as_of + 1,
        page_size=page_size,
    )
    replayed = 0
    while rows := (yield from walk.next_page()):
        result = fold_rows(state, rows, registry)
        replayed += result.replayed
        max_ts = max(max_ts, result.max_timestamp)
    if (
        keeps
        and as_of is None
        and state._position is not None
        and save_snapshot is not False
        and (replayed >= cls.snapshot_every or (save_snapshot and replayed))
    ):
        snapshot = Snapshot(
            workspace,
            event_id,
            name,
            code_version,
            state._position,
            state._revision,
            max_ts,
            state.model_dump_json(),
            erasure_generation=generation,
        )
        yield Call(SnapshotStoreTier, lambda store: store.save_snapshot(snapshot))
    return state
