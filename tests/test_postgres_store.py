"""What the PostgreSQL store promises beyond the shared contract: exact JSON round trips, text
PostgreSQL cannot hold, positions under concurrent writers, expected_revision races, the
indexes the look-ups use, and the URL."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from auditbird import AuditLog, AuditValidationError, ConflictError
from auditbird.query import Query
from auditbird.row import Row
from auditbird.stores import open_store
from auditbird.stores.postgres import PostgresStore


@pytest.fixture
def store(postgres_url: str) -> Any:
    with PostgresStore(postgres_url, pool_size=8) as s:
        yield s


def raw_row(uid: str, **kw: Any) -> Row:
    base = dict(
        uid=uid,
        workspace="",
        id="m:1",
        action="a.b",
        actor='{"id":"u1","name":"system"}',
        targets="[]",
        metadata=None,
        timestamp=1_700_000_000_000,
        version=1,
    )
    base.update(kw)
    return Row(**base)  # type: ignore[arg-type]


def test_the_url_opens_the_store_and_auditlog_takes_it(postgres_url: str) -> None:
    with AuditLog(postgres_url + "?pool_size=2") as log:
        assert type(log.store).__name__ == "PostgresStore"
        stored = log.publish_audit_log({"id": "m:1", "action": "a.b"})
        assert log.event(stored.uid).to_dict() == stored.to_dict()
    alias = open_store(postgres_url.replace("postgresql://", "postgres://", 1))
    assert alias.last_position() == 1
    alias.close()
    # libpq options pass through as written (a space stays a space, not "+")
    with PostgresStore.from_url(postgres_url + "?options=-c%20statement_timeout%3D12345&pool_size=1") as s:
        assert s._one("SHOW statement_timeout", ()) == "12345ms"


def test_json_columns_come_back_byte_for_byte(store: PostgresStore) -> None:
    # Key order, spacing of the codec, numbers as written, unicode incl. U+2028 and astral
    # characters, and a \u0000 escape inside metadata (jsonb would reorder or refuse these).
    metadata = '{"z":1,"a":[1.0,2.50,1e400],"s":"é\u2028😀\\u0000","nested":{"b":null,"a":true}}'
    actor = '{"name":"Zoë","id":"u\u2029"}'
    targets = '[{"type":"monitor","id":"1"},{"name":"page","id":"Ω"}]'
    row = raw_row("u-1", id="mönitor:\u2028", metadata=metadata, actor=actor, targets=targets)
    store.append([row])
    [back] = store.query(Query(uid="u-1"))
    assert back[:9] == row[:9]
    assert [r.uid for r in store.query(Query(target_type="page", target_id="Ω"))] == ["u-1"]
    assert [r.uid for r in store.query(Query(actor_id="u\u2029"))] == ["u-1"]


def test_unicode_events_round_trip_through_the_facade(postgres_url: str) -> None:
    with AuditLog(postgres_url) as log:
        event = log.publish_audit_log(
            {
                "id": "page:☃\u2028",
                "action": "page.renamed",
                "actor": {"id": "ü", "name": "Ünïcødé \U0001f426"},
                "metadata": {"from": "a\u2029b", "to": "\\u0000 is text here", "emoji": "🐦"},
            }
        )
        [read] = log.get_audit_log(event_id="page:☃\u2028")
        assert read.to_dict() == event.to_dict()
        assert [e.uid for e in log.list(text="\\u0000 IS TEXT")] == [event.uid]


def test_a_nul_character_is_refused_whole_batch_and_named(store: PostgresStore) -> None:
    good = raw_row("ok")
    with pytest.raises(AuditValidationError) as info:
        store.append([good, raw_row("bad", id="m:\x00"), raw_row("bad2", actor='{"id":"\\u0000"}')])
    assert [(p.index, p.loc) for p in info.value.problems] == [(1, "id"), (2, "actor")]
    assert "U+0000" in str(info.value)
    assert store.last_position() == 0  # nothing of the batch


def test_the_first_copy_of_a_uid_wins_inside_one_batch_and_per_workspace(store: PostgresStore) -> None:
    store.append([raw_row("u", metadata='{"copy":1}'), raw_row("u", metadata='{"copy":2}')])
    store.append([raw_row("u", metadata='{"copy":3}'), raw_row("v")])
    store.append([raw_row("u", workspace="other", metadata='{"copy":4}')])  # another workspace: its own
    assert [(r.uid, r.metadata, r.position) for r in store.read_committed()] == [
        ("u", '{"copy":1}', 1),
        ("v", None, 2),
        ("u", '{"copy":4}', 3),
    ]


def test_positions_are_gap_free_and_in_commit_order_under_concurrent_writers(store: PostgresStore) -> None:
    writers, per_writer = 8, 40
    errors: list[BaseException] = []

    def write(w: int) -> None:
        try:
            for i in range(per_writer):
                size = i % 3 + 1
                store.append([raw_row(f"{w}-{i}-{k}", id=f"s:{w}") for k in range(size)])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    rows = store.read_committed(0, 100_000)
    expected = writers * sum(i % 3 + 1 for i in range(per_writer))
    assert [r.position for r in rows] == list(range(1, expected + 1))
    for w in range(writers):  # each writer's batches are contiguous and in its own order
        mine = [r for r in rows if r.id == f"s:{w}"]
        assert [int(r.uid.split("-")[1]) for r in mine] == sorted(int(r.uid.split("-")[1]) for r in mine)


def test_expected_revision_lets_exactly_one_of_many_racing_writers_win(postgres_url: str) -> None:
    with AuditLog(postgres_url) as log:
        log.publish_audit_log({"id": "acct:1", "action": "acct.opened"})
        barrier = threading.Barrier(8)
        outcomes: list[str] = []

        def decide(n: int) -> None:
            barrier.wait()
            try:
                log.publish_audit_log({"id": "acct:1", "action": f"acct.w{n}"}, expected_revision=1)
                outcomes.append("won")
            except ConflictError:
                outcomes.append("conflict")

        threads = [threading.Thread(target=decide, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(outcomes) == ["conflict"] * 7 + ["won"]
        assert log.revision("acct:1") == 2


def test_the_lookups_use_their_indexes(store: PostgresStore, postgres_url: str) -> None:
    import psycopg

    from auditbird.stores.postgres_query import build_select

    store.append(
        [
            raw_row(f"u{i}", id=f"m:{i % 50}", action=f"a.x{i % 40}", actor=f'{{"id":"u{i % 30}"}}',
                    metadata=f'{{"n":"needle{i}"}}')
            for i in range(2_000)
        ]
    )  # fmt: skip
    plans = {}
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE audit_log")
        conn.execute("SET enable_seqscan = off")  # a tiny table: ask whether an index *can* serve
        for name, q in {
            "stream": Query(event_id="m:1"),
            "action": Query(actions=("a.x1",)),
            "actor": Query(actor_id="u1"),
            "position": Query(order="position", after_position=1_990),
        }.items():
            sql, params = build_select(q)
            plan = conn.execute("EXPLAIN " + sql, params).fetchall()
            plans[name] = "\n".join(r[0] for r in plan)
    assert "audit_log_stream" in plans["stream"]
    assert "audit_log_action" in plans["action"]
    assert "audit_log_actor" in plans["actor"]
    assert "audit_log_pkey" in plans["position"]


def test_text_search_escapes_like_wildcards(store: PostgresStore) -> None:
    store.append([raw_row("a", metadata='{"p":"100%_done"}'), raw_row("b", metadata='{"p":"100 x done"}')])
    assert [r.uid for r in store.query(Query(text="100%_"))] == ["a"]
    assert [r.uid for r in store.query(Query(text="0 X D"))] == ["b"]


def test_a_match_never_spans_the_id_and_the_metadata(store: PostgresStore) -> None:
    store.append([raw_row("a", id="m:1", metadata='{"k":1}')])
    assert store.query(Query(text="1\n{")) == []
    assert [r.uid for r in store.query(Query(text='{"k"'))] == ["a"]


def test_a_single_retried_publish_adds_no_target_rows(store: PostgresStore, postgres_url: str) -> None:
    import psycopg

    store.append([raw_row("a", targets='[{"type":"monitor","id":"1"},{"name":"page","id":"2"}]')])
    store.append([raw_row("b", targets='[{"type":"monitor","id":"1"}]')])
    store.append([raw_row("a", targets='[{"type":"incident","id":"9"}]')])  # a retry: skipped whole
    store.append([raw_row("b", targets='[{"type":"incident","id":"9"}]')])  # the newest row, retried
    with psycopg.connect(postgres_url) as conn:
        got = conn.execute("SELECT position, type, target_id, uid FROM audit_target ORDER BY 1, 2").fetchall()
    assert got == [(1, "monitor", "1", "a"), (1, "page", "2", "a"), (2, "monitor", "1", "b")]
    assert store.query(Query(target_type="incident")) == []


def test_a_batch_probes_the_uid_index_instead_of_reading_the_table(
    store: PostgresStore, postgres_url: str
) -> None:
    import psycopg

    from auditbird.stores.postgres_write import _INSERT, prepare

    store.append([raw_row(f"old{i:05d}") for i in range(5_000)])
    batch = [raw_row(f"new{i:05d}") for i in range(1_000)]
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("ANALYZE audit_log")
        plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + _INSERT, prepare(batch, None)).fetchall())
    # A hash anti-join over a sequential scan made every batch cost O(table size).
    assert "Seq Scan on audit_log" not in plan
    assert "audit_log_workspace_uid" in plan


def test_append_one_writes_to_the_stores_tables_whatever_the_callers_search_path(
    store: PostgresStore, postgres_url: str
) -> None:
    """A caller whose search_path finds another audit_log first (a schema, a temp table) must
    not have auditbird_append_one write there: the function pins its own search_path."""
    import psycopg

    store.append([raw_row("first")])
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA shadow")
        conn.execute("CREATE TABLE shadow.audit_log (LIKE public.audit_log INCLUDING ALL)")
        conn.execute("CREATE TEMP TABLE audit_target (LIKE public.audit_target INCLUDING ALL)")
        conn.execute("SET search_path = shadow, public")
        added = conn.execute(
            "SELECT public.auditbird_append_one('second', '', 'm:1', 'a.b', '{\"id\":\"u1\"}', "
            "'[{\"type\":\"t\",\"id\":\"1\"}]', NULL, 1, 1, 'u1', ARRAY['t'], ARRAY['1'])"
        ).fetchone()
        assert added == (1,)
        assert conn.execute("SELECT count(*) FROM shadow.audit_log").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM pg_temp.audit_target").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM public.audit_target").fetchone() == (1,)
    assert {r.uid for r in store.query(Query())} == {"first", "second"}
