"""Operations written once, run by two thin drivers (blocking and async).

An operation (a read, a history walk, a fold, a follow loop) is a generator that *yields
steps* and receives their results, without doing I/O itself: the sans-I/O shape the Tinybird
HTTP client already uses. :func:`run` / :func:`iterate` perform the steps on a blocking
store, :func:`arun` / :func:`aiterate` on an async one; ``AuditLog`` and ``AsyncAuditLog``
are the two drivers of the same operations, so the two facades cannot drift.

Steps:

- :class:`Call`: call the store, needing a tier (checked by :func:`~.stores.capabilities.require`);
  ``fn(store)`` returns the result (blocking) or an awaitable of it (async).
- :class:`Supports`: does the store declare a tier (the async driver asks for its twin)?
- :class:`Sleep`: wait (a follow loop polling); ``stop`` ends the wait early.
- :class:`Out`: an item for the caller of an iterating operation.

>>> from auditbird.testing import MemoryStore
>>> from auditbird.query import Query
>>> from auditbird.stores.base import Store
>>> def count(workspace):
...     rows = yield Call(Store, lambda s: s.query(Query(workspace=workspace, limit=None)))
...     return len(rows)
>>> run(MemoryStore(), count(""))
0
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from typing import Any, NamedTuple, TypeVar

from .erasure.seal import holds_sealed
from .row import Row
from .stores.capabilities import CommitWaiter, async_tier, require, supports

__all__ = [
    "Call",
    "Supports",
    "Sleep",
    "WaitForCommit",
    "Out",
    "Step",
    "Op",
    "run",
    "iterate",
    "arun",
    "aiterate",
]

R = TypeVar("R")
T = TypeVar("T")


class Call(NamedTuple):
    """Call the store; it must declare ``tier`` (a blocking tier; the async driver checks its twin)."""

    tier: type
    fn: Callable[[Any], Any]


class Supports(NamedTuple):
    """Ask whether the store declares ``tier``; the answer is a bool."""

    tier: type


class Sleep(NamedTuple):
    """Wait ``seconds`` (or until ``stop`` is set)."""

    seconds: float
    stop: threading.Event | None = None


class WaitForCommit(NamedTuple):
    """Wait for the next commit (a follow loop that has read everything): on a store that can
    be woken (:class:`~.stores.capabilities.CommitWaiter`) until one arrives, ``timeout``
    passes or ``stop`` is set, and the result is the token to pass next time; elsewhere, a
    :class:`Sleep` of ``poll_interval`` (result None)."""

    poll_interval: float
    timeout: float | None
    stop: threading.Event | None = None
    token: int | None = None


class Out(NamedTuple):
    """An item an iterating operation hands to its caller."""

    value: Any


Step = Call | Supports | Sleep | WaitForCommit | Out
Op = Generator[Step, Any, R]


def _sync_step(store: Any, step: Step) -> Any:
    if isinstance(step, Call):
        return step.fn(require(store, step.tier))
    if isinstance(step, Supports):
        return supports(store, step.tier)
    if isinstance(step, WaitForCommit):
        if supports(store, CommitWaiter):
            return store.wait_for_commit(step.token, step.timeout, step.stop)
        step = Sleep(step.poll_interval, step.stop)
    if isinstance(step, Sleep):
        if step.stop is not None:
            step.stop.wait(step.seconds)
        else:
            time.sleep(step.seconds)
        return None
    raise TypeError(f"{step!r} is not a step for run(); iterate() takes Out")


async def _async_step(store: Any, step: Step) -> Any:
    if isinstance(step, Call):
        return await step.fn(require(store, async_tier(step.tier)))
    if isinstance(step, Supports):
        return supports(store, async_tier(step.tier))
    if isinstance(step, WaitForCommit):
        step = Sleep(step.poll_interval, step.stop)  # no async store is woken by commits yet
    if isinstance(step, Sleep):
        # A threading.Event cannot be awaited: sleep in short slices and look at it between.
        deadline = time.monotonic() + step.seconds
        while (left := deadline - time.monotonic()) > 0 and not (step.stop and step.stop.is_set()):
            await asyncio.sleep(min(left, 0.05))
        return None
    raise TypeError(f"{step!r} is not a step for arun(); aiterate() takes Out")


def run(store: Any, op: Op[R]) -> R:
    """Drive ``op`` against a blocking store; its return value."""
    # The hot path of every publish and read: kept to one send per step.
    try:
        step = op.send(None)
        while True:
            try:
                if type(step) is Call:
                    value = step.fn(require(store, step.tier))
                else:
                    value = _sync_step(store, step)
            except Exception as exc:  # handed to the operation: it may fall back or clean up
                step = op.throw(exc)
                continue
            step = op.send(value)
    except StopIteration as done:
        result: R = done.value
        return result


def iterate(store: Any, op: Op[None]) -> Iterator[Any]:
    """Drive an iterating ``op`` against a blocking store, yielding its :class:`Out` items."""
    value: Any = None
    error: BaseException | None = None
    try:
        while True:
            try:
                step = op.throw(error) if error is not None else op.send(value)
            except StopIteration:
                return
            value, error = None, None
            if isinstance(step, Out):
                yield step.value
                continue
            try:
                value = _sync_step(store, step)
            except Exception as exc:
                error = exc
    finally:
        op.close()


def _holds_sealed(value: Any) -> bool:
    """Whether a store's answer holds a row with a sealed personal value (:mod:`.erasure`).
    Opening one asks a key store (a file, or a round trip to PostgreSQL per value): not work
    for the event loop, so the async drivers hand the operation's next step to a thread."""
    if isinstance(value, Row):
        return holds_sealed(value)
    return (
        isinstance(value, list)
        and bool(value)
        and isinstance(value[0], Row)
        and any(map(holds_sealed, value))
    )


def _send(op: Op[Any], value: Any) -> tuple[bool, Any]:
    """``(False, next step)`` or ``(True, the operation's return value)``: a StopIteration
    cannot cross a thread's future, so the thread hands back which it was."""
    try:
        return False, op.send(value)
    except StopIteration as done:
        return True, done.value


async def arun(store: Any, op: Op[R]) -> R:
    """Drive ``op`` against an async store; its return value. A step whose input holds sealed
    values runs on a thread (its decoding opens them: key store I/O)."""
    try:
        step = op.send(None)
        while True:
            try:
                value = await _async_step(store, step)
            except Exception as exc:
                step = op.throw(exc)
                continue
            if _holds_sealed(value):
                finished, out = await asyncio.to_thread(_send, op, value)
                if finished:
                    returned: R = out
                    return returned
                step = out
            else:
                step = op.send(value)
    except StopIteration as done:
        result: R = done.value
        return result


async def aiterate(store: Any, op: Op[None]) -> AsyncIterator[Any]:
    """Drive an iterating ``op`` against an async store, yielding its :class:`Out` items."""
    value: Any = None
    error: BaseException | None = None
    try:
        while True:
            if error is None and _holds_sealed(value):  # opening them is key store I/O
                finished, step = await asyncio.to_thread(_send, op, value)
                if finished:
                    return
            else:
                try:
                    step = op.throw(error) if error is not None else op.send(value)
                except StopIteration:
                    return
            value, error = None, None
            if isinstance(step, Out):
                yield step.value
                continue
            try:
                value = await _async_step(store, step)
            except Exception as exc:
                error = exc
    finally:
        op.close()
