"""Regressions found by trying the event-sourcing operations on every store (issue 12).

They use the ``make_log`` fixture (every store kind of conftest.STORE_KINDS), so they ran,
and failed, on the code before the tiers.
"""

from __future__ import annotations

import asyncio
import inspect

import pytest

from auditbird import AsyncAuditLog, AuditLog
from auditbird.event import new_uid
from auditbird.projections import Projection, on

T0 = 1_767_225_600_000


class Downs(Projection):
    downs: int = 0

    @on("monitor.down")
    def _down(self, event: object) -> None:
        self.downs += 1


def test_history_and_project_work_on_every_store(make_log) -> None:
    log = make_log()
    log.publish_many(
        [{"id": "monitor:1", "action": "monitor.down", "timestamp": T0 + i} for i in range(3)]
        + [{"id": "monitor:1", "action": "monitor.up", "timestamp": T0 + 9}]
    )
    assert [e.timestamp for e in log.history("monitor:1", page_size=2)] == [T0, T0 + 1, T0 + 2, T0 + 9]
    state = log.project("monitor:1", Downs)
    assert (state.downs, state.revision) == (3, 4)


def test_a_uid_published_again_comes_back_once_from_paged_history(make_log) -> None:
    log = make_log()
    uid = new_uid()
    log.publish_audit_log({"id": "monitor:1", "action": "monitor.down", "uid": uid, "timestamp": T0 + 1})
    log.publish_audit_log({"id": "monitor:1", "action": "monitor.up", "timestamp": T0 + 2})
    # The same uid again, with a later timestamp (a retry that let the time default): stores nothing.
    log.publish_audit_log({"id": "monitor:1", "action": "monitor.down", "uid": uid, "timestamp": T0 + 3})
    got = [(e.uid, e.timestamp) for e in log.history("monitor:1", page_size=1)]
    assert got[0] == (uid, T0 + 1) and len(got) == 2
    assert [e.uid for e in log.list(event_id="monitor:1", limit=1)] + [
        e.uid
        for e in log.list(
            event_id="monitor:1", limit=1, cursor=log.list(event_id="monitor:1", limit=1).next_cursor
        )
    ] == [got[1][0], uid]


def _public(cls: type) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_")}


def test_the_async_log_has_every_method_of_the_sync_log() -> None:
    assert _public(AuditLog) - _public(AsyncAuditLog) == set()
    for name in _public(AuditLog) - {"store", "publish"}:
        sync_attr = getattr(AuditLog, name)
        if callable(sync_attr):
            async_attr = getattr(AsyncAuditLog, name)
            sync_params = list(inspect.signature(sync_attr).parameters)
            assert list(inspect.signature(async_attr).parameters) == sync_params, name


def test_async_follow_and_snapshots_work(tmp_path) -> None:
    async def main() -> tuple[list[int | None], int, int]:
        async with AsyncAuditLog(f"sqlite:///{tmp_path / 'a.db'}") as log:
            await log.publish_many([{"id": "monitor:1", "action": "monitor.down"} for _ in range(3)])
            positions = [r.position async for r in log.follow(idle_timeout=0)]
            state = await log.snapshot("monitor:1", Downs)
            snapshots = log.snapshots
            assert snapshots is not None
            snap = await snapshots.load_snapshot(
                "", "monitor:1", Downs.projection_name(), Downs.code_version(log.registry)
            )
            assert snap is not None
            return positions, state.downs, snap.revision

    assert asyncio.run(main()) == ([1, 2, 3], 3, 3)


def test_the_service_client_raises_authentication_error_on_401_and_403(live_server) -> None:
    from auditbird import AuthenticationError

    with (
        AuditLog(live_server.url, api_key="ab_not_a_key") as log,
        pytest.raises(AuthenticationError, match="401|refused"),
    ):
        log.list()
    reader = live_server.mint("acme", "read", name="read-only")
    with AuditLog(live_server.url, api_key=reader, workspace="acme") as log:
        with pytest.raises(AuthenticationError, match="may not"):
            log.publish_audit_log({"id": "monitor:1", "action": "monitor.down"})
        assert log.list().events == []  # what the key may do still works


def test_async_history_and_project_over_the_native_tinybird_client(tinybird_server) -> None:
    from auditbird import Tinybird
    from auditbird.stores.tinybird import AsyncTinybirdStore

    workspace = f"w{new_uid()[-12:]}"

    async def main() -> tuple[list[int], int, str]:
        log = AsyncAuditLog(
            tb=Tinybird(token=tinybird_server.token, host=tinybird_server.url), workspace=workspace
        )
        kind = type(log.store).__name__
        assert isinstance(log.store, AsyncTinybirdStore)  # no worker threads, no hidden sync log
        await log.publish_many(
            [{"id": "monitor:1", "action": "monitor.down", "timestamp": T0 + i} for i in range(3)]
        )
        history = [e.timestamp async for e in log.history("monitor:1", page_size=2)]
        state = await log.project("monitor:1", Downs)
        await log.close()
        return history, state.downs, kind

    assert asyncio.run(main()) == ([T0, T0 + 1, T0 + 2], 3, "AsyncTinybirdStore")
