"""SQLite text search: the arm each shape takes (narrow, intersect, wide; issue 15.4) and that
every arm answers exactly the agreed rule (a substring of the subject id or the metadata JSON,
ASCII letters in either case).

The *intersect* arm serves a text whose trigrams are all common with a filter over 2,000
events; "common" is over ``_GRAM_COUNT_CAP`` events (10,000), so these tests lower the cap to
reach it with a few thousand events. The cap is formatted into the SQL when it is built, so the
lowered cap is what the store runs."""

from __future__ import annotations

import json
import sqlite3
import uuid
from typing import Any

import pytest

from auditbird import AuditLog
from auditbird.query import Query
from auditbird.stores import sqlite_query
from auditbird.stores.sqlite import SQLiteStore
from auditbird.stores.sqlite_query import TEXT_ARMS, build_text_arm_select

W = "A"
CAP = 50  # trigrams in over 50 events count as common here


def _fold(value: str) -> str:
    return "".join(c.lower() if "A" <= c <= "Z" else c for c in value)


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> tuple[AuditLog, list[dict[str, Any]]]:
    """3,000 events: `a.b` (2,800, over the narrow bound) never says "interval"; `c.d` (200)
    does in every other event; "region" and the region codes are in every `a.b` event."""
    path = tmp_path_factory.mktemp("arms") / "arms.db"
    log = AuditLog(SQLiteStore(path), workspace=W)
    events = []
    for i in range(3_000):
        action = "a.b" if i % 15 else "c.d"
        if action == "c.d" and i % 2:
            metadata: dict[str, Any] = {"before": {"interval": 30}, "after": {"Interval": 60}, "seq": i}
        else:
            metadata = {"region": ["syd", "ams", "gru"][i % 3], "seq": i}
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


def _arm(log: AuditLog, q: Query) -> str:
    built = build_text_arm_select(q)
    assert built is not None
    conn = sqlite3.connect(log.store.path)  # type: ignore[attr-defined]
    try:
        (arm,) = conn.execute(*built).fetchone()
    finally:
        conn.close()
    return TEXT_ARMS[arm]


@pytest.mark.parametrize(
    ("text", "filters", "arm"),
    [
        ("interval", {"actions": ("a.b",)}, "intersect"),  # common trigrams, wide filter, no match
        ('"region":"syd"', {"actor_id": "u4"}, "narrow"),  # the actor's 333 events
        ("interval", {}, "intersect"),
        ("zebra", {"actions": ("a.b",)}, "wide"),  # a trigram in no event
    ],
)
def test_each_arm_is_taken_where_it_pays(
    filled: tuple[AuditLog, list[dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
    text: str,
    filters: dict[str, Any],
    arm: str,
) -> None:
    monkeypatch.setattr(sqlite_query, "_GRAM_COUNT_CAP", CAP)
    log, _ = filled
    assert _arm(log, Query(workspace=W, text=text, limit=100, **filters)) == arm


def test_past_the_walk_bound_the_wide_arm_reads_the_candidates_instead(
    filled: tuple[AuditLog, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The intersect arm's worst case walks every event the filters match: past the bound it
    is not taken (the 3,000-event workspace is over a bound of 2,500; the 200 `c.d` are not)."""
    monkeypatch.setattr(sqlite_query, "_GRAM_COUNT_CAP", CAP)
    monkeypatch.setattr(sqlite_query, "_INTERSECT_WALK", 2_500)
    log, _ = filled
    assert _arm(log, Query(workspace=W, text="interval", limit=100)) == "wide"
    assert _arm(log, Query(workspace=W, text="interval", limit=100, actions=("a.b",))) == "wide"
    monkeypatch.setattr(sqlite_query, "_NARROW_FILTER", 100)
    assert _arm(log, Query(workspace=W, text="interval", limit=100, actions=("c.d",))) == "intersect"


def test_with_the_shipped_cap_a_few_thousand_events_never_take_the_intersect_arm(
    filled: tuple[AuditLog, list[dict[str, Any]]],
) -> None:
    log, _ = filled
    assert _arm(log, Query(workspace=W, text="interval", limit=100, actions=("a.b",))) == "wide"


@pytest.mark.parametrize("cap", [CAP, 10_000])
@pytest.mark.parametrize("text", ["interval", "INTERVAL", '"region":"syd"', "seq", "zebra", "m:3", '":30}'])
@pytest.mark.parametrize(
    "filters",
    [
        {},
        {"action": "a.b"},
        {"action": "c.d"},
        {"action": ["a.b", "c.d"]},
        {"actor_id": "u4"},
        {"target_type": "monitor"},
        {"since": 1_700_000_000_000 + 500_000},
    ],
)
def test_every_arm_answers_the_agreed_rule(
    filled: tuple[AuditLog, list[dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
    cap: int,
    text: str,
    filters: dict[str, Any],
) -> None:
    monkeypatch.setattr(sqlite_query, "_GRAM_COUNT_CAP", cap)
    log, events = filled

    def matches(e: dict[str, Any]) -> bool:
        action = filters.get("action")
        actions = [action] if isinstance(action, str) else action
        return (
            (actions is None or e["action"] in actions)
            and filters.get("actor_id") in (None, e["actor"]["id"])
            and (
                "target_type" not in filters or any(t["type"] == filters["target_type"] for t in e["targets"])
            )
            and e["timestamp"] >= filters.get("since", 0)
            and (
                _fold(text) in _fold(e["id"])
                or _fold(text) in _fold(json.dumps(e["metadata"], separators=(",", ":"), ensure_ascii=False))
            )
        )

    expected = sorted((e for e in events if matches(e)), key=lambda e: -e["timestamp"])[:120]
    got = log.list(text=text, limit=120, **filters).events
    assert [e.uid for e in got] == [e["uid"] for e in expected]
