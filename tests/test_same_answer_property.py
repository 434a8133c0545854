"""One answer on every store (issue #9, point 6): the same events published to SQLite, the
Tinybird store (the local server) and the service give the same reads, in the same order, with
the same winner for a repeated uid (the first stored copy), for arbitrary valid events.

Events carry the text that broke the Tinybird path (U+2028, U+0085, non-ASCII letters), repeated
uids with other timestamps and content, several targets (ids with colons), and absent or empty
metadata. Every example writes into a workspace of its own on each store.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from auditbird import AuditLog, Event

pytest.importorskip("chdb")

T0 = 1_700_000_000_000
TEXT = st.text(alphabet="aAzZ:ßÜü \u2028\u0085\u2029é😀", min_size=1, max_size=6)
KEY = st.text(alphabet="aBc:1", min_size=1, max_size=4)  # ids, with colons

target = st.one_of(
    st.fixed_dictionaries({"type": st.sampled_from(["a", "a:b", "monitor"]), "id": KEY}),
    st.fixed_dictionaries({"name": st.sampled_from(["a", "page"]), "id": KEY}),
)
event = st.fixed_dictionaries(
    {
        "id": st.sampled_from(["m:1", "m:2"]) | TEXT.map(lambda t: "s:" + t),
        "action": st.sampled_from(["monitor.down", "monitor.up", "incident.create"]),
        "actor": st.fixed_dictionaries({"id": st.sampled_from(["", "u1", "Ü"]) | TEXT, "name": TEXT}),
        "timestamp": st.integers(0, 6).map(lambda k: T0 + k * 1000),
    },
    optional={
        "uid": st.integers(0, 3),  # one of few, so they repeat; absent: a uid of its own
        "targets": st.lists(target, max_size=3),
        "metadata": st.none()
        | st.just({})
        | st.fixed_dictionaries({"note": TEXT}, optional={"n": st.integers(0, 9)}),
    },
)
# Publishes: each a batch of one to three events (a batch may repeat a uid too).
batches = st.lists(st.lists(event, min_size=1, max_size=3), min_size=1, max_size=4)


def _view(events: list[Event]) -> list[tuple[Any, ...]]:
    return [
        (
            e.uid,
            e.id,
            e.action,
            e.actor.model_dump(exclude_none=True),
            [t.model_dump(exclude_none=True) for t in e.targets or []],
            e.timestamp,
            e.version,
            e.metadata,
        )
        for e in events
    ]


def _reads(log: AuditLog, published: list[dict[str, Any]]) -> dict[str, Any]:
    """Every read the property compares: streams, each filter, and paging at sizes 1 to 3."""
    out: dict[str, Any] = {}
    for stream in sorted({e["id"] for e in published}):
        out[f"stream {stream!r}"] = _view(log.get_audit_log(stream))
    filters: list[dict[str, Any]] = [{}]
    filters += [{"action": a} for a in sorted({e["action"] for e in published})]
    filters += [{"actor_id": a} for a in sorted({e["actor"]["id"] for e in published})]
    for t in [t for e in published for t in e.get("targets") or []][:4]:
        kind = t.get("type") or t.get("name")
        filters += [
            {"target_type": kind, "target_id": t["id"]},
            {"target_type": kind},
            {"target_id": t["id"]},
        ]
        filters.append({"target_type": kind + ":" + t["id"][:1], "target_id": t["id"][1:] or "x"})
    for e in published[:2]:
        note = (e.get("metadata") or {}).get("note") or e["id"]
        filters += [{"text": note[:3]}, {"text": note[:3].swapcase()}]
    filters += [{"since": T0 + 2000}, {"until": T0 + 4000}, {"since": T0 + 1000, "until": T0 + 5000}]
    for f in filters:
        out[f"list {f!r}"] = _view(log.list(limit=100, **f).events)
    for size in (1, 2, 3):
        out[f"pages of {size}"] = _view(list(log.iter_events(page_size=size)))
    return out


def _with_uids(publishes: list[list[dict[str, Any]]], prefix: str) -> list[list[dict[str, Any]]]:
    """Every event gets its uid here, the same on every store: a repeated one (``uid`` drawn) or
    one of its own. The prefix keeps examples apart (a store may hold a uid in one workspace only)."""
    out, n = [], 100
    for batch in publishes:
        out.append([])
        for e in batch:
            n += 1
            out[-1].append({**e, "uid": f"{prefix}-{e.get('uid', n)}"})
    return out


def _check(factories: dict[str, Callable[..., AuditLog]], drawn: list[list[dict[str, Any]]]) -> None:
    workspace = f"p{uuid.uuid4().hex[:10]}"
    publishes = _with_uids(drawn, workspace)
    published = [e for batch in publishes for e in batch]
    answers = {}
    for kind, make_log in factories.items():
        log = make_log(workspace=workspace)
        for batch in publishes:
            log.publish_many(batch)
        answers[kind] = _reads(log, published)
    for kind in ("tinybird", "service"):
        for read, expected in answers["sqlite"].items():
            assert answers[kind][read] == expected, f"{kind} differs from sqlite on {read}"
    # The winner of a repeated uid is its first published copy.
    first: dict[str, dict[str, Any]] = {}
    for e in published:
        first.setdefault(e["uid"], e)
    for row in answers["sqlite"]["pages of 1"]:
        if row[0] in first:
            assert (row[1], row[5]) == (first[row[0]]["id"], first[row[0]]["timestamp"])


def _factories(request: pytest.FixtureRequest) -> dict[str, Callable[..., AuditLog]]:
    return {
        kind: request.getfixturevalue(f"{kind}_log_factory") for kind in ("sqlite", "tinybird", "service")
    }


_SETTINGS: dict[str, Any] = {
    "deadline": None,
    "database": None,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    # Each example costs ~150 requests over three stores: report the failing example as drawn
    # rather than spend minutes shrinking it.
    "phases": [Phase.explicit, Phase.reuse, Phase.generate],
}


@settings(max_examples=6, **_SETTINGS)
@given(publishes=batches)
def test_every_store_gives_the_same_answer(request: pytest.FixtureRequest, publishes: Any) -> None:
    _check(_factories(request), publishes)


@pytest.mark.slow
@settings(max_examples=60, **_SETTINGS)
@given(publishes=batches)
def test_every_store_gives_the_same_answer_many_examples(
    request: pytest.FixtureRequest, publishes: Any
) -> None:
    _check(_factories(request), publishes)
