"""Reads of an OpenStatus workspace (the seed's ``audit_log__v0``) through the Python store: a
stream through the seed's own pipe, every other filter through the Query API, answering as
SQLite does."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from auditbird import AuditLog, UnsupportedOperation

from .tinybird_seed_support import post_seed, seed_line, seed_log, seed_server, stream

pytestmark = pytest.mark.timeout(180)
__all__ = ["seed_server", "stream"]  # fixtures


def test_store_pages_a_seed_stream_with_cursors_and_filters(seed_server: Any, stream: str) -> None:
    lines = [
        seed_line(
            {"id": stream, "action": "monitor.down" if i % 2 else "monitor.up", "metadata": {"i": i}},
            1_700_000_002_000 + i // 2,
        )
        for i in range(7)
    ]
    post_seed(seed_server, lines)
    with seed_log(seed_server) as log:
        everything = log.get_audit_log(stream)
        paged, cursor = [], None
        while True:
            page = log.list(event_id=stream, limit=3, cursor=cursor)
            paged += page.events
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        downs = log.list(event_id=stream, action="monitor.down", since=1_700_000_002_001, limit=50).events
    keys = [(e.timestamp, e.uid) for e in everything]
    assert len(everything) == 7 and keys == sorted(keys, reverse=True)
    assert [e.uid for e in paged] == [e.uid for e in everything]
    assert sorted(e.metadata["i"] for e in downs) == [3, 5]


def test_a_read_by_uid_alone_names_the_migration(seed_server: Any) -> None:
    with (
        seed_log(seed_server) as log,
        pytest.raises(UnsupportedOperation, match="auditbird tinybird migrate"),
    ):
        log.get("5eed0000-0000-5000-8000-000000000000")


def _filter_events(prefix: str, t0: int) -> list[dict[str, Any]]:
    """Events that tell the filters apart (one timestamp each, so the order is the same everywhere)."""
    shapes: list[dict[str, Any]] = [
        {
            "action": "monitor.down",
            "actor": {"id": "u1", "name": "ann"},
            "targets": [{"id": "1", "type": "monitor"}],
        },
        {"action": "monitor.up", "targets": [{"id": "b:c", "type": "a"}], "metadata": {"city": "GRU"}},
        {
            "action": "incident.create",
            "actor": {"id": "u2", "name": "bob"},
            "targets": [{"id": "2", "name": "page"}],
        },
        {"action": "monitor.down", "targets": [{"id": "c", "type": "a:b"}], "metadata": {"city": "Émile"}},
        {"action": "monitor.up", "actor": {"id": "u1", "name": "ann"}, "metadata": {"city": "émile gru"}},
        {"action": "monitor.down", "targets": [{"id": "1", "type": "page"}, {"id": "2", "type": "monitor"}]},
    ]
    out = []
    for i, shape in enumerate(shapes * 2):
        event = {"id": f"{prefix}:{'ab'[i % 2]}", "timestamp": t0 + 10 * i, "metadata": {"n": i}, **shape}
        out.append(event)
    return out


def _seen(events: list[Any]) -> list[tuple[str, str, int]]:
    return [(e.id, e.action, e.timestamp) for e in events]


FILTERS: list[dict[str, Any]] = [
    {},
    {"action": "monitor.down"},
    {"action": ["monitor.up", "incident.create"]},
    {"actor_id": "u1"},
    {"actor_id": ""},
    {"target_type": "monitor"},
    {"target_id": "2"},
    {"target_type": "a", "target_id": "b:c"},
    {"target_type": "a:b", "target_id": "c"},
    {"target_type": "page", "target_id": "2"},
    {"target_type": "page", "target_id": "1"},
    {"target_type": "monitor", "target_id": "1"},
    {"text": "gru"},
    {"text": "ÉMILE"},
    {"text": "émile"},
    {"text": "ab:b"},
]


@pytest.mark.parametrize("filters", FILTERS, ids=[json.dumps(f, ensure_ascii=False) for f in FILTERS])
def test_every_list_filter_answers_as_sqlite_does(
    seed_server: Any, tmp_path: Path, filters: dict[str, Any]
) -> None:
    prefix, t0 = f"ab{uuid.uuid4().hex[:8]}", 1_600_000_000_000 + uuid.uuid4().int % 10**9 * 1000
    events = _filter_events(prefix, t0)
    window = {"since": t0, "until": t0 + 10 * len(events)}
    with AuditLog(f"sqlite:///{tmp_path / 'a.db'}") as sqlite, seed_log(seed_server) as seed:
        sqlite.publish_many(events)
        seed.publish_many(events)
        expected = _seen(sqlite.list(**window, **filters, limit=100).events)
        got = seed.list(**window, **filters, limit=100).events
    assert _seen(got) == expected
    if not filters:
        assert len(expected) == len(events)


def test_query_api_reads_page_with_cursors_in_both_orders(seed_server: Any) -> None:
    t0 = 1_500_000_000_000 + uuid.uuid4().int % 10**9 * 1000
    # 11 rows on 4 timestamps (ties), 2 of them copies: 9 events.
    lines = [
        seed_line({"id": f"s{i}", "action": "monitor.down", "metadata": {"i": i}}, t0 + i // 3)
        for i in range(9)
    ]
    post_seed(seed_server, lines + lines[:2])
    window = {"since": t0, "until": t0 + 10}
    with seed_log(seed_server) as log:
        whole = log.list(**window, limit=100).events
        assert len(whole) == 9 and len({e.uid for e in whole}) == 9
        keys = [(e.timestamp, e.uid) for e in whole]
        assert keys == sorted(keys, reverse=True)
        paged = list(log.iter_events(**window, page_size=2))
        assert [e.uid for e in paged] == [e.uid for e in whole]
        store = log.store
        from auditbird import Query

        asc = store.query(
            Query(since=t0, until=t0 + 10, order="asc", limit=4, after=(whole[-3].timestamp, whole[-3].uid))
        )
        assert [r.uid for r in asc] == [e.uid for e in reversed(whole[:-3])][:4]


# -- nothing lost silently ------------------------------------------------------------------


def test_a_token_the_query_api_refuses_says_which_token_is_needed(seed_server: Any) -> None:
    from auditbird import Tinybird
    from auditbird.stores.tinybird import AuthenticationError

    tb = Tinybird(token="p.wrong", host=seed_server.url, datasource="audit_log__v0")
    with (
        AuditLog(tb=tb) as log,
        pytest.raises(AuthenticationError, match="DATASOURCES:READ on audit_log__v0"),
    ):  # noqa: E501
        log.list(action="monitor.down")
