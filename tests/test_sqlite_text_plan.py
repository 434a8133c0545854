"""Text search on SQLite: which index serves each shape (EXPLAIN QUERY PLAN, SQLite's own
planner), and that every shape still answers exactly the agreed rule (a substring of the
subject id or the metadata JSON, ASCII letters in either case)."""

from __future__ import annotations

import sqlite3
import uuid
from typing import Any

import pytest

from auditbird import AuditLog
from auditbird.query import Query
from auditbird.stores.sqlite import SQLiteStore
from auditbird.stores.sqlite_query import build_select

W = "A"


def _plan(store: SQLiteStore, q: Query) -> list[str]:
    sql, params = build_select(q, text_index=store.text_index)
    conn = sqlite3.connect(store.path)
    try:
        return [row[-1] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
    finally:
        conn.close()


def _scans_a_table(plan: list[str]) -> list[str]:
    """Steps that read audit_log or audit_target whole (not through an index's range)."""
    return [step for step in plan if step.split(" ")[:2] in (["SCAN", "a"], ["SCAN", "t"])]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> SQLiteStore:
    path = tmp_path_factory.mktemp("plan") / "plan.db"
    s = SQLiteStore(path)
    assert s.text_index, f"SQLite {sqlite3.sqlite_version} has the FTS5 trigram tokenizer (>= 3.34)"
    return s


INDEXED = {
    "text": {},
    "text + action": {"actions": ("a.b",)},
    "text + actions": {"actions": ("a.b", "c.d")},
    "text + actor": {"actor_id": "u1"},
    "text + target type": {"target_type": "monitor"},
    "text + time range": {"since": 0, "until": 10**13},
    "text + page cursor": {"after": (10**13, "z")},
}


@pytest.mark.parametrize("shape", list(INDEXED))
def test_a_text_search_of_three_or_more_characters_uses_the_trigram_index(
    store: SQLiteStore, shape: str
) -> None:
    plan = _plan(store, Query(workspace=W, text='"region":"syd"', limit=50, **INDEXED[shape]))
    assert any("audit_text VIRTUAL TABLE INDEX" in step for step in plan), plan
    assert _scans_a_table(plan) == [], plan  # both arms go through an index


@pytest.mark.parametrize(
    ("filters", "index"),
    [
        ({"event_id": "m:1"}, "audit_log_stream"),
        ({"target_id": "7"}, "audit_target_id"),
        ({"target_type": "monitor", "target_id": "7"}, "audit_target_id"),
    ],
)
def test_a_text_search_in_one_stream_or_target_reads_that_index(
    store: SQLiteStore, filters: dict[str, Any], index: str
) -> None:
    plan = _plan(store, Query(workspace=W, text="needle", limit=50, **filters))
    assert any(step.startswith("SEARCH") and f"INDEX {index} " in step for step in plan), plan
    assert not any("audit_text" in step for step in plan), plan
    assert _scans_a_table(plan) == [], plan


@pytest.mark.parametrize("text", ["n", "ne"])
def test_a_short_text_walks_the_time_index_newest_first(store: SQLiteStore, text: str) -> None:
    """Decided: 1-2 characters hold no trigram; they walk the time index and stop at a full page."""
    plan = _plan(store, Query(workspace=W, text=text, limit=50))
    assert any(step.startswith("SEARCH a USING INDEX audit_log_time") for step in plan), plan
    assert not any("audit_text" in step for step in plan), plan
    assert not any("TEMP B-TREE FOR ORDER BY" in step for step in plan), plan  # no full sort


# -- the answers ------------------------------------------------------------------------------------


def _fold(value: str) -> str:
    return "".join(c.lower() if "A" <= c <= "Z" else c for c in value)


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> tuple[AuditLog, list[dict[str, Any]]]:
    """2,600 events: `a.b` (2,400: over the narrow-filter bound) and `c.d` (200: under it);
    2,080 with a `monitor` target (over), 520 with a `page` one (under)."""
    path = tmp_path_factory.mktemp("answers") / "answers.db"
    log = AuditLog(SQLiteStore(path), workspace=W)
    words = ["needle", "NEEDLE", "haystack", "Straße", "seq", "region"]
    events = []
    for i in range(2_600):
        action = "a.b" if i < 2_400 else "c.d"
        metadata = {"region": ["syd", "ams", "gru"][i % 3], "seq": i, "word": words[i % len(words)]}
        if i % 97 == 0:
            metadata["rare"] = f"zebra-{i}"
        events.append(
            {
                "uid": str(uuid.uuid4()),
                "id": f"m:{i % 40}",
                "action": action,
                "actor": {"id": f"u{i % 9}", "name": "x"},
                "targets": [{"id": str(i % 13), "type": "monitor" if i % 5 else "page"}],
                "metadata": metadata,
                "timestamp": 1_700_000_000_000 + i * 1000,
            }
        )
    log.publish_many(events)
    return log, events


@pytest.mark.parametrize(
    "text", ["needle", "NeEdLe", "zebra-97", "zebra-", '"region":"syd"', "straße", "STRASSE", "m:3", "1234"]
)
@pytest.mark.parametrize(
    "filters",
    [
        {},
        {"action": "a.b"},  # over the narrow bound: the trigram index
        {"action": "c.d"},  # under it: the action's index, each row checked
        {"action": ["a.b", "c.d"]},
        {"actor_id": "u4"},
        {"target_type": "monitor"},
        {"target_type": "page", "action": "c.d"},
        {"target_id": "5"},
        {"event_id": "m:7"},
        {"since": 1_700_000_000_000 + 1_000_000, "until": 1_700_000_000_000 + 2_000_000},
    ],
)
def test_every_text_search_shape_answers_the_agreed_rule(
    filled: tuple[AuditLog, list[dict[str, Any]]], text: str, filters: dict[str, Any]
) -> None:
    log, events = filled
    import json

    def matches(e: dict[str, Any]) -> bool:
        action = filters.get("action")
        actions = [action] if isinstance(action, str) else action
        return (
            (actions is None or e["action"] in actions)
            and filters.get("actor_id") in (None, e["actor"]["id"])
            and filters.get("event_id") in (None, e["id"])
            and all(
                any(t["type"] == filters["target_type"] for t in e["targets"])
                for _ in [0]
                if "target_type" in filters
            )
            and all(
                any(t["id"] == filters["target_id"] for t in e["targets"])
                for _ in [0]
                if "target_id" in filters
            )
            and e["timestamp"] >= filters.get("since", 0)
            and e["timestamp"] < filters.get("until", 10**15)
            and (
                _fold(text) in _fold(e["id"])
                or _fold(text) in _fold(json.dumps(e["metadata"], separators=(",", ":"), ensure_ascii=False))
            )
        )

    expected = sorted((e for e in events if matches(e)), key=lambda e: -e["timestamp"])[:150]
    got = log.list(text=text, limit=150, **filters).events
    assert [e.uid for e in got] == [e["uid"] for e in expected]
