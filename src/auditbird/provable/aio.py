"""Proofs and checkpoints for :class:`~auditbird.AsyncAuditLog`: the same reads as
:mod:`auditbird.provable`, run in a worker thread so the event loop serves others meanwhile
(a proof is O(log n) indexed reads; a checkpoint also signs with Ed25519)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ..stores.threaded import ThreadedStore
from . import checkpoint as _checkpoint
from . import proofs as _proofs

if TYPE_CHECKING:
    from ..async_log import AsyncAuditLog

__all__ = ["prove", "consistency", "checkpoint"]


def _blocking_store(log: AsyncAuditLog) -> Any:
    """The blocking store behind the log's threaded face (a store with a native async client
    keeps no tree: :func:`~.proofs.provable_store` then says so, naming it)."""
    return log.store.sync if isinstance(log.store, ThreadedStore) else log.store


async def prove(
    log: AsyncAuditLog, uid: str, *, size: int | None = None, workspace: str | None = None
) -> _proofs.InclusionProof:
    ws = log.workspace if workspace is None else workspace
    return await asyncio.to_thread(_proofs.prove, _blocking_store(log), uid, size=size, workspace=ws)


async def consistency(
    log: AsyncAuditLog, old: int, new: int | None = None, *, workspace: str | None = None
) -> _proofs.ConsistencyProof:
    ws = log.workspace if workspace is None else workspace
    return await asyncio.to_thread(_proofs.consistency, _blocking_store(log), old, new, workspace=ws)


async def checkpoint(log: AsyncAuditLog, *, workspace: str | None = None) -> str:
    ws = log.workspace if workspace is None else workspace
    return await asyncio.to_thread(_checkpoint.sign_checkpoint, _blocking_store(log), workspace=ws)
