"""The Tinybird store kind for the contract suite: the real client against the local server.

Needs the ``tinybird_server`` fixture (``-p tests.plugins.tinybird_server``). Every test shares
the server's one ``audit_log`` datasource, so each factory hides a unique workspace prefix
under the logs it makes: writes are stored as ``<prefix><workspace>`` and reads strip it, so
the logs still see the workspace they were given and tests never see each other's rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

import pytest

from auditbird import AuditLog, Query, Tinybird
from auditbird.stores.base import Row
from auditbird.stores.tinybird import TinybirdStore

_LOG_OPTIONS = ("registry", "strict", "limits")


class PrefixedStore:
    """A store seen through a workspace prefix: a private corner of a shared datasource."""

    def __init__(self, store: TinybirdStore, prefix: str) -> None:
        self.store = store
        self.prefix = prefix

    def append(self, rows: Sequence[Row]) -> None:
        self.store.append([r._replace(workspace=self.prefix + r.workspace) for r in rows])

    def query(self, query: Query) -> list[Row]:
        rows = self.store.query(replace(query, workspace=self.prefix + query.workspace))
        n = len(self.prefix)
        return [r._replace(workspace=r.workspace[n:]) for r in rows]

    def close(self) -> None:
        self.store.close()


def tinybird_store(server: Any, **options: Any) -> TinybirdStore:
    return TinybirdStore(Tinybird(token=server.token, host=server.url), **options)


@pytest.fixture
def tinybird_log_factory(tinybird_server: Any) -> Iterator[Any]:
    """``make_log(workspace="", **options) -> AuditLog`` on the local Tinybird server.

    ``registry=``, ``strict=`` and ``limits=`` go to the log; other options (``buffered=``,
    ``batch_rows=``, ...) to a store of its own. Logs made without store options share one store.
    """
    prefix = f"t{uuid.uuid4().hex[:12]}-"
    stores: list[TinybirdStore] = []

    def make_log(workspace: str = "", **options: Any) -> AuditLog:
        log_options = {k: options.pop(k) for k in _LOG_OPTIONS if k in options}
        if options or not stores:
            stores.append(tinybird_store(tinybird_server, **options))
        store = stores[-1] if options else stores[0]
        return AuditLog(PrefixedStore(store, prefix), workspace=workspace, **log_options)

    yield make_log
    for store in stores:
        store.close()
