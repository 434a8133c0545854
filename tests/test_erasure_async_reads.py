"""Async reads open sealed personal values off the event loop.

Opening a sealed value asks a subject key store: a SQLite file, or PostgreSQL (a round trip
per value). ``AsyncAuditLog`` hands the step that decodes such rows to a thread; every key
look-up is recorded with whether an event loop was running in its thread."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import Field

from auditbird import AsyncAuditLog, AuditLog, Event, Projection, on
from auditbird.erasure import ERASED, erase_subject
from auditbird.erasure.keys import SubjectKeys
from auditbird.erasure.keys_postgres import PostgresSubjectKeys

from .erasure_support import ADA_MAIL
from .erasure_support import invited_registry as _registry


class Emails(Projection):
    emails: list[str] = Field(default_factory=list)

    @on("user.invited")
    def _invited(self, event: Event) -> None:
        self.emails.append(event.metadata.email)


def _on_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each key look-up (either key store) ran with an event loop in its thread."""
    seen: list[bool] = []
    for cls in (SubjectKeys, PostgresSubjectKeys):
        original: Callable[..., Any] = cls.lookup

        def lookup(self: Any, kid: str, _original: Callable[..., Any] = original) -> Any:
            seen.append(_on_loop())
            return _original(self, kid)

        monkeypatch.setattr(cls, "lookup", lookup)
    return seen


def _publish(url: str) -> None:
    with AuditLog(url, workspace="acme", registry=_registry()) as log:
        log.publish_many(
            [
                {"id": stream, "action": "user.invited", "actor": {"id": actor}, "metadata": {"email": email}}
                for stream, actor, email in (
                    ("org:1", "42", ADA_MAIL),
                    ("org:1", "43", "b@x.org"),
                    ("org:2", "42", ADA_MAIL),
                )
            ]
        )
        erase_subject(log, "user:43")


async def _read_everything(url: str) -> dict[str, Any]:
    async with AsyncAuditLog(url, workspace="acme", registry=_registry()) as log:
        stream = await log.get_audit_log("org:1")
        page = await log.list(limit=10)
        one = await log.get(stream[0].uid)
        every = [e async for e in log.iter_events(page_size=2)]
        history = [e async for e in log.history("org:1")]
        folded = await log.project("org:1", Emails, snapshots=False)
    assert one is not None
    return {
        "stream": [e.metadata.email for e in stream],
        "page": sorted(e.metadata.email for e in page.events if e.action == "user.invited"),
        "get": one.metadata.email,
        "iter": sorted(e.metadata.email for e in every if e.action == "user.invited"),
        "history": [e.metadata.email for e in history],
        "fold": folded.emails,
    }


_EXPECTED = {
    "stream": [ERASED, ADA_MAIL],  # newest first, as the seed's get_audit_log
    "page": [ERASED, ADA_MAIL, ADA_MAIL],
    "get": ERASED,
    "iter": [ERASED, ADA_MAIL, ADA_MAIL],
    "history": [ADA_MAIL, ERASED],
    "fold": [ADA_MAIL, ERASED],
}


def test_async_reads_of_sealed_values_on_sqlite_never_ask_the_key_file_on_the_loop(
    tmp_path: Any, lookups: list[bool]
) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    _publish(url)
    lookups.clear()
    assert asyncio.run(_read_everything(url)) == _EXPECTED
    assert lookups and not any(lookups), f"{sum(lookups)} of {len(lookups)} key look-ups ran on the loop"


def test_async_reads_of_sealed_values_on_postgres_never_ask_the_database_on_the_loop(
    postgres_url: str, lookups: list[bool]
) -> None:
    _publish(postgres_url)
    lookups.clear()
    assert asyncio.run(_read_everything(postgres_url)) == _EXPECTED
    assert lookups and not any(lookups), f"{sum(lookups)} of {len(lookups)} key look-ups ran on the loop"


def test_rows_without_sealed_values_are_decoded_on_the_loop(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No thread hop where nothing is sealed: the plain read path costs what it did."""
    hops: list[object] = []
    original = asyncio.to_thread

    async def counting(fn: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append(fn)
        return await original(fn, *args, **kwargs)

    url = f"sqlite:///{tmp_path / 'plain.db'}"
    with AuditLog(url, workspace="acme") as log:
        log.publish_many([{"id": "m:1", "action": "monitor.down", "metadata": {"n": i}} for i in range(3)])

    async def read() -> int:
        async with AsyncAuditLog(url, workspace="acme") as log:
            monkeypatch.setattr(asyncio, "to_thread", counting)
            return len(await log.get_audit_log("m:1")) + len([e async for e in log.iter_events(page_size=2)])

    assert asyncio.run(read()) == 6
    assert hops, "the store's own reads go through asyncio.to_thread: the counter must see them"
    assert [fn for fn in hops if getattr(fn, "__name__", "") == "_send"] == []  # no decoding step
