"""The PostgreSQL store's trigram index for ``text=`` searches is opt-in (it cost ~45% of a batch's
insert time): without it a text search gives the same answers, unindexed; ``text_index=True`` (or
``?text_index=true``) builds it once and the search uses it; schema 1 databases lose it on upgrade."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from auditbird.query import Query
from auditbird.row import Row
from auditbird.stores import open_store
from auditbird.stores.postgres import PostgresStore
from auditbird.stores.postgres_query import build_select
from auditbird.stores.postgres_schema import ASCII_FOLD, MIGRATIONS, SCHEMA_VERSION


def _row(n: int, metadata: str) -> Row:
    return Row(f"u{n:05d}", "", f"m:{n % 9}", "a.b", '{"id":"u1"}', "[]", metadata, 1_700_000_000_000 + n, 1)


ROWS = [_row(n, f'{{"n":"needle{n}","note":"Disk FULL Éclair"}}') for n in range(600)]
SEARCHES = [
    'NEEDLE59"',
    "NEEDLE59",
    "needle599",
    "disk full",
    "éclair",
    "Éclair",
    "ÉCLAIR",
    '"n":"needle1',
    "m:4",
    "nothing",
]


def _index_names(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'audit_log'").fetchall()
    return {name for (name,) in rows}


def _answers(store: PostgresStore) -> dict[str, list[str]]:
    return {text: [r.uid for r in store.query(Query(text=text, limit=20))] for text in SEARCHES}


def test_text_search_answers_the_same_with_and_without_the_index(postgres_server: Any) -> None:
    plain_url = postgres_server.url(postgres_server.create_database())
    indexed_url = postgres_server.url(postgres_server.create_database())
    with PostgresStore(plain_url) as plain, PostgresStore(indexed_url, text_index=True) as indexed:
        plain.append(ROWS)
        indexed.append(ROWS)
        without, with_index = _answers(plain), _answers(indexed)
    assert "audit_log_text" not in _index_names(plain_url)
    assert "audit_log_text" in _index_names(indexed_url)
    assert without == with_index
    assert without['NEEDLE59"'] == ["u00059"]
    assert without["NEEDLE59"] == [f"u{n:05d}" for n in range(599, 589, -1)] + ["u00059"]
    assert without["disk full"] == [f"u{n:05d}" for n in range(599, 579, -1)]
    assert without["éclair"] == []  # only A-Z fold: É is not é
    assert without["ÉCLAIR"] == without["Éclair"] == without["disk full"]
    assert without["m:4"][:2] == ["u00598", "u00589"]
    assert without["nothing"] == []


def test_the_url_option_builds_the_index_once_and_the_search_uses_it(postgres_url: str) -> None:
    with open_store(postgres_url) as store:
        store.append(ROWS)
    assert "audit_log_text" not in _index_names(postgres_url)
    with open_store(postgres_url + "?text_index=true") as store:
        assert [r.uid for r in store.query(Query(text="NEEDLE123"))] == ["u00123"]
    with open_store(postgres_url) as store:  # opened without the option: the index stays, used
        assert "audit_log_text" in _index_names(postgres_url)
        assert store.text_index is True
    sql, params = build_select(Query(text="NEEDLE123"), text_index=True)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE audit_log")
        conn.execute("SET enable_seqscan = off")
        plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + sql, params).fetchall())
    assert "audit_log_text" in plan


def test_a_schema_1_database_drops_the_trigram_index_on_upgrade(postgres_url: str) -> None:
    with psycopg.connect(postgres_url) as conn:  # what auditbird with schema 1 created
        conn.execute("CREATE TABLE auditbird_meta (key text PRIMARY KEY, value text NOT NULL)")
        conn.execute(MIGRATIONS[0])
        conn.execute("INSERT INTO auditbird_meta VALUES ('schema_version', '1')")
    assert "audit_log_text" in _index_names(postgres_url)
    with PostgresStore(postgres_url) as store:
        assert store.schema_version() == SCHEMA_VERSION == 3
        store.append(ROWS[:5])
        assert [r.uid for r in store.query(Query(text="needle3"))] == ["u00003"]
    assert "audit_log_text" not in _index_names(postgres_url)
    assert "translate(" in MIGRATIONS[0] and ASCII_FOLD not in MIGRATIONS[0]  # schema 1 as shipped


@pytest.mark.parametrize("value", ["maybe", ""])
def test_a_text_index_option_that_is_not_a_yes_or_no_is_refused(postgres_url: str, value: str) -> None:
    with pytest.raises(ValueError, match="text_index=.* must be true or false"):
        open_store(f"{postgres_url}?text_index={value}")
