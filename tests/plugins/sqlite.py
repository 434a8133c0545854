"""The SQLite store kind for the contract suite: a real file on disk."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from auditbird import AuditLog
from auditbird.stores.sqlite import SQLiteStore


@pytest.fixture
def sqlite_log_factory(tmp_path: Path) -> Iterator[Any]:
    store = SQLiteStore(tmp_path / "contract.db")
    logs: list[AuditLog] = []

    def make_log(workspace: str = "", **options: Any) -> AuditLog:
        log = AuditLog(store, workspace=workspace, **options)
        logs.append(log)
        return log

    yield make_log
    store.close()
