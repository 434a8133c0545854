"""One tenant cannot starve the others (issue #10 item 7): live tails are capped per key and in
total, reads run beside writes (not under the writer's lock), and a text search is an index
look-up, not a scan of the log. Performance itself is measured in bench/noisy_neighbour.py."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from auditbird import AuditLog, Query
from auditbird.stores.sqlite import SQLiteStore
from auditbird.stores.sqlite_query import build_select
from tests.plugins.service import LiveServer


def _open_tail(stack: ExitStack, server: LiveServer, key: str) -> httpx.Response:
    client = stack.enter_context(httpx.Client(base_url=server.url, timeout=30))
    return stack.enter_context(client.stream("GET", "/v1/stream", headers={"Authorization": f"Bearer {key}"}))


@pytest.mark.timeout(120)
def test_live_tails_are_capped_per_key_and_in_total(tmp_path: Path, start_service) -> None:
    server: LiveServer = start_service(tmp_path, AUDITBIRD_MAX_TAILS_PER_KEY="2", AUDITBIRD_MAX_TAILS="3")
    a = server.mint("tails-a", "read")
    b, c = (server.mint(f"tails-{n}", "read") for n in "bc")
    with ExitStack() as stack:
        assert [_open_tail(stack, server, a).status_code for _ in range(2)] == [200, 200]
        third = _open_tail(stack, server, a)
        assert third.status_code == 429
        assert third.headers["content-type"] == "application/problem+json"
        third.read()
        assert "2 live tails per key" in third.json()["detail"]
        assert _open_tail(stack, server, b).status_code == 200  # another key: its own budget
        over = _open_tail(stack, server, c)  # but 3 in total
        assert over.status_code == 429
        over.read()
        assert "3 live tails" in over.json()["detail"] and over.headers["retry-after"]
    # A refused tail read nothing and recorded nothing: two records of A's tails, not three.
    admin = server.mint("tails-a", "admin")
    with server.client(admin) as client:
        viewed = client.get("/v1/events", params={"action": "audit_log.viewed"}).json()["data"]
    assert len([e for e in viewed if e["metadata"].get("live")]) == 2
    # Closed tails give their places back (the server notices the disconnect at its next poll).
    with ExitStack() as stack:
        deadline_statuses = []
        for _ in range(40):
            r = _open_tail(stack, server, c)
            deadline_statuses.append(r.status_code)
            if r.status_code == 200:
                break
            r.close()
            threading.Event().wait(0.25)
        assert deadline_statuses[-1] == 200


def test_reads_do_not_wait_for_the_writers_lock(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "rw.db")
    log = AuditLog(store, workspace="A")
    log.publish_audit_log({"id": "x:1", "action": "a.b", "metadata": {"note": "needle in a haystack"}})
    done = threading.Event()
    found: list[int] = []

    def read() -> None:
        found.append(len(store.query(Query(workspace="A", text="needle"))))
        found.append(len(store.query(Query(workspace="A"))))
        done.set()

    with store._lock:  # a writer holds the lock (e.g. a commit waiting for fsync)
        reader = threading.Thread(target=read)
        reader.start()
        assert done.wait(60), "a read waited for the writer's lock"
    reader.join()
    assert found == [1, 1]
    store.close()


def _plan(store: SQLiteStore, q: Query) -> str:
    sql, params = build_select(q, text_index=store.text_index)
    conn = sqlite3.connect(store.path)
    try:
        return " | ".join(row[-1] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
    finally:
        conn.close()


def test_a_text_search_uses_the_trigram_index(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "fts.db")
    assert store.text_index, f"SQLite {sqlite3.sqlite_version} has FTS5 trigram (>= 3.34)"
    assert "VIRTUAL TABLE INDEX" in _plan(store, Query(workspace="A", text="needle"))
    # Under 3 characters a trigram index cannot help: those few searches scan (documented).
    assert "VIRTUAL TABLE" not in _plan(store, Query(workspace="A", text="ne"))
    store.close()


HAYSTACK = [
    ("m:1", {"note": "Straße ÄBC needle"}),
    ("m:2", {"note": "NEEDLE in caps"}),
    ("m:3", {"note": "100% sure_thing \\ back"}),
    ("m:4", {"note": 'a "quoted" word'}),
    ("Needle:5", {"note": "subject id only"}),
    ("m:6", {"note": "éclair ÉCLAIR"}),
    ("m:7", {"note": "nothing here"}),
]


@pytest.mark.parametrize(
    "text",
    [
        "needle", "NeEdLe", "äbc", "ÄBC", "straße", "STRASSE", "100%", "%", "_", "sure_thing", "\\",
        '"quoted"', "quo", "éclair", "ÉCLAIR", "Éclair", "ne", "e", "z", "in caps", "Needle:", "x" * 200,
    ],
)  # fmt: skip
def test_a_text_search_through_the_index_matches_the_agreed_rule(tmp_path: Path, text: str) -> None:
    """Substring of the subject id or the metadata JSON; ASCII letters in either case, every
    other character exactly (the rule every store keeps)."""
    store = SQLiteStore(tmp_path / f"rule-{uuid.uuid4().hex[:6]}.db")
    log = AuditLog(store, workspace="A")
    for stream, metadata in HAYSTACK:
        log.publish_audit_log({"id": stream, "action": "a.b", "metadata": metadata})
    AuditLog(store, workspace="B").publish_audit_log({"id": "m:1", "action": "a.b", "metadata": {"n": text}})
    got = sorted(e.id for e in log.list(text=text, limit=100).events)
    expected = sorted(
        e.id
        for e in log.list(limit=100).events
        if _ascii_fold(text) in _ascii_fold(e.id)
        or _ascii_fold(text) in _ascii_fold(_stored_metadata(store, e.uid))
    )
    assert got == expected
    store.close()


def _ascii_fold(value: str) -> str:
    return "".join(c.lower() if "A" <= c <= "Z" else c for c in value)


def _stored_metadata(store: SQLiteStore, uid: str) -> str:
    conn = sqlite3.connect(store.path)
    try:
        (metadata,) = conn.execute("SELECT metadata FROM audit_log WHERE uid = ?", (uid,)).fetchone()
    finally:
        conn.close()
    return str(metadata)


@pytest.mark.parametrize("limit", [10, 50, 1_000])
def test_a_text_search_pages_through_every_match_whichever_path_answers(tmp_path: Path, limit: int) -> None:
    """The newest rows are tried first, then the index: pages must agree with a plain scan."""
    store = SQLiteStore(tmp_path / "pages.db")
    log = AuditLog(store, workspace="A")
    events = [
        {
            "id": f"m:{i}",
            "action": "a.b",
            "timestamp": 1_700_000_000_000 + i,
            "metadata": {"n": "NeEdLe" if i % 100 == 0 else "hay"},
        }
        for i in range(2_500)
    ]
    log.publish_many(events)
    seen, cursor = [], None
    while True:
        page = log.list(text="needle", limit=limit, cursor=cursor)
        seen += [e.id for e in page.events]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [f"m:{i}" for i in range(2_400, -1, -100)]
    store.close()
