"""The service's keys in PostgreSQL: two key stores on one database behave as one.

Each ``PostgresKeyStore`` here stands for one replica of ``auditbird serve`` (its own pool, its
own cache); the replicas-as-processes tests are in test_service_postgres_replicas.py.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from auditbird import StoreUnavailable
from auditbird.service import KeyStore
from auditbird.service.keys_postgres import SCHEMA_VERSION, PostgresKeyStore
from auditbird.service.keys_sqlite import SqliteKeyStore
from auditbird.service.viewer_links import Grant, ViewerLinks

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _now() -> int:
    return int(time.time() * 1000)


@pytest.fixture
def replicas(postgres_url: str) -> Any:
    a, b = KeyStore(postgres_url, cache_seconds=60), KeyStore(postgres_url, cache_seconds=0.3)
    yield a, b
    a.close()
    b.close()


def test_a_postgresql_url_opens_the_postgresql_key_store_and_a_path_the_file(
    postgres_url: str, tmp_path: Path
) -> None:
    with KeyStore(postgres_url) as pg, KeyStore(tmp_path / "k.db") as file:
        assert isinstance(pg, PostgresKeyStore) and isinstance(file, SqliteKeyStore)
        assert pg.where == postgres_url.replace("auditbird@", "")  # no user, no password
    with psycopg.connect(postgres_url) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        (version,) = conn.execute(
            "SELECT value FROM auditbird_service_meta WHERE key = 'schema_version'"
        ).fetchone()
    assert {"auditbird_api_key", "auditbird_idempotency", "auditbird_service_secret"} <= tables
    assert int(version) == SCHEMA_VERSION


def test_a_key_created_on_one_replica_works_on_the_other(replicas: Any) -> None:
    a, b = replicas
    created = a.create(workspace="acme", scope="write", name="billing", rate=5)
    found = b.verify(created.secret)
    assert found is not None and found.workspace == "acme" and found.scope == "write" and found.rate == 5
    assert [k.key_id for k in b.list()] == [created.key.key_id]
    assert b.verify(created.secret[:-1] + ("x" if created.secret[-1] != "x" else "y")) is None


def test_only_the_hash_of_a_secret_is_stored(replicas: Any, postgres_url: str) -> None:
    a, _ = replicas
    created = a.create(workspace="acme", scope="read")
    secret = created.secret.split("_", 2)[2]
    with psycopg.connect(postgres_url) as conn:
        rows = conn.execute("SELECT * FROM auditbird_api_key").fetchall()
    assert len(rows) == 1 and not any(secret in str(value) for value in rows[0])


def test_a_revoke_on_one_replica_is_refused_by_the_other_within_its_cache_seconds(replicas: Any) -> None:
    a, b = replicas  # b caches verified keys for 0.3 s
    created = a.create(workspace="acme", scope="read")
    assert b.verify(created.secret) is not None  # now in b's cache
    assert a.revoke(created.key.key_id) is True
    assert a.verify(created.secret) is None  # the replica that revoked: at once
    deadline = time.monotonic() + 30  # generous: the bound is b.cache_seconds, not asserted as time
    while b.verify(created.secret) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert b.verify(created.secret) is None
    assert a.revoke(created.key.key_id) is False  # not live any more
    assert [k.revoked_at is not None for k in b.list(include_revoked=True)] == [True]


def test_an_idempotency_record_is_shared_and_the_first_answer_wins(replicas: Any) -> None:
    a, b = replicas
    assert a.idempotent_get("acme", "k1") is None
    first = a.idempotent_put("acme", "k1", "digest", 201, b'{"uid":"1"}')
    assert first == ("digest", 201, b'{"uid":"1"}')
    assert b.idempotent_get("acme", "k1") == first
    assert b.idempotent_put("acme", "k1", "digest", 201, b'{"uid":"2"}') == first  # the loser gets it
    assert b.idempotent_get("other", "k1") is None  # per workspace


def test_forget_idempotency_deletes_one_workspaces_records(replicas: Any) -> None:
    a, b = replicas
    a.idempotent_put("acme", "k1", "d", 201, b"ada")
    a.idempotent_put("acme", "k2", "d", 201, b"ada")
    a.idempotent_put("other", "k1", "d", 201, b"kept")
    assert b.forget_idempotency("acme") == 2
    assert a.idempotent_get("acme", "k1") is None and a.idempotent_get("acme", "k2") is None
    assert a.idempotent_get("other", "k1") == ("d", 201, b"kept")


def _race_puts(stores: tuple[Any, ...], key: str) -> list[tuple[str, int, bytes]]:
    """Each store records its own answer to ``key`` at the same moment; what each was told."""
    barrier = threading.Barrier(len(stores))
    answers: list[tuple[str, int, bytes]] = []

    def put(store: Any, body: bytes) -> None:
        barrier.wait()
        answers.append(store.idempotent_put("acme", key, "d", 201, body))

    threads = [threading.Thread(target=put, args=(s, f"answer {i}".encode())) for i, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


def test_replicas_racing_on_one_idempotency_key_all_answer_the_one_stored(replicas: Any) -> None:
    a, b = replicas
    for round_ in range(20):
        answers = _race_puts((a, b, a, b), f"race-{round_}")
        assert len(answers) == 4 and len(set(answers)) == 1, answers
        assert a.idempotent_get("acme", f"race-{round_}") == answers[0]


def test_idempotency_records_older_than_a_day_are_pruned_on_write(replicas: Any, postgres_url: str) -> None:
    a, _ = replicas
    a.idempotent_put("acme", "old", "d", 201, b"{}")
    a.idempotent_put("acme", "recent", "d", 201, b"{}")
    with psycopg.connect(postgres_url) as conn:
        conn.execute("UPDATE auditbird_idempotency SET created_at = created_at - 86400001 WHERE key = 'old'")
    a.idempotent_put("acme", "new", "d", 201, b"{}")
    assert a.idempotent_get("acme", "old") is None
    assert a.idempotent_get("acme", "recent") is not None and a.idempotent_get("acme", "new") is not None


def test_four_processes_opening_a_fresh_database_at_once_create_the_key_tables_once(
    postgres_url: str,
) -> None:
    code = "import sys; from auditbird.service import KeyStore; KeyStore(sys.argv[1]).close()"
    env = {**os.environ, "PYTHONPATH": SRC}
    procs = [
        subprocess.Popen([sys.executable, "-c", code, postgres_url], env=env, stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()


def test_the_secrets_are_made_once_per_database(postgres_url: str) -> None:
    stores = [KeyStore(postgres_url) for _ in range(4)]
    try:
        barrier = threading.Barrier(4)
        secrets: list[tuple[bytes, bytes]] = []

        def read(store: Any) -> None:
            barrier.wait()
            secrets.append((store.server_secret(), store.link_secret()))

        threads = [threading.Thread(target=read, args=(s,)) for s in stores]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(secrets) == 4 and len(set(secrets)) == 1
        assert len(secrets[0][0]) == 32
    finally:
        for s in stores:
            s.close()
    with psycopg.connect(postgres_url) as conn:
        names = sorted(r[0] for r in conn.execute("SELECT name FROM auditbird_service_secret"))
    assert names == ["uid", "viewer_link"]


def test_a_viewer_link_signed_with_one_replica_verifies_on_the_other_until_rotated(replicas: Any) -> None:
    a, b = replicas
    token = ViewerLinks(a).sign(Grant("acme", _now() + 60_000, actor_id="u1"))
    grant = ViewerLinks(b).verify(token)
    assert grant is not None and grant.workspace == "acme" and grant.actor_id == "u1"
    ViewerLinks(a).rotate()
    assert ViewerLinks(b).verify(token) is None  # a rotation anywhere revokes every link at once
    assert ViewerLinks(b).verify(ViewerLinks(a).sign(Grant("acme", _now() + 60_000))) is not None


def test_another_database_has_other_secrets(postgres_server: Any, postgres_url: str) -> None:
    other = postgres_server.url(postgres_server.create_database())
    try:
        with KeyStore(postgres_url) as a, KeyStore(other) as b:
            assert a.server_secret() != b.server_secret()
            assert ViewerLinks(b).verify(ViewerLinks(a).sign(Grant("acme", _now() + 60_000))) is None
    finally:
        postgres_server.drop_database(other.rsplit("/", 1)[1])


def test_connections_the_server_dropped_are_replaced(postgres_server: Any, postgres_url: str) -> None:
    with KeyStore(postgres_url, cache_seconds=0) as keys:
        created = keys.create(workspace="acme", scope="read")
        for _ in range(3):
            with postgres_server.admin() as admin:  # as a server restart or an idle timeout would
                (ended,) = admin.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    (postgres_url.rsplit("/", 1)[1],),
                ).fetchone()
            assert ended >= 1
            assert keys.verify(created.secret) is not None


def test_an_unreachable_keys_database_is_a_store_error_soon_and_recovers(
    postgres_server: Any, postgres_url: str
) -> None:
    name = postgres_url.rsplit("/", 1)[1]
    with KeyStore(postgres_url + "?connect_timeout=2", cache_seconds=0) as keys:
        created = keys.create(workspace="acme", scope="read")
        with postgres_server.admin() as admin:  # the database refuses every connection for now
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
            )
        try:
            with pytest.raises(StoreUnavailable) as info:  # a 503 in the service, never a hang
                keys.verify(created.secret)
            # Answered to callers with no key (a 503): no host nor database (review finding 8);
            # the operator's log names them.
            assert "keys database" in str(info.value) and name not in str(info.value)
            assert "127.0.0.1" not in str(info.value)
        finally:
            with postgres_server.admin() as admin:
                admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                assert keys.verify(created.secret) is not None
                break
            except StoreUnavailable:
                time.sleep(0.2)
        assert keys.verify(created.secret) is not None


# -- bad input ------------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("postgresql://u:secret@127.0.0.1:notaport/db", "is not a PostgreSQL URL libpq understands"),
        ("postgresql://u:secret@127.0.0.1/db?nonsense=1", "unknown query parameter 'nonsense'"),
        # libpq echoes the bad token (review finding 8): none of it may reach the message
        ("postgresql://u:se%zzsecret@127.0.0.1/db", "percent-escapes"),
        ("postgresql://u:secret@127.0.0.1/db?pool_size=many", "pool_size='many' in the keys URL"),
    ],
)
def test_a_wrong_keys_url_says_what_is_wrong_without_the_password(url: str, says: str) -> None:
    with pytest.raises(ValueError) as info:
        KeyStore(url)
    assert says in str(info.value) and "secret" not in str(info.value)


def test_a_refused_connection_says_to_check_the_server() -> None:
    port = _closed_port()
    with pytest.raises(StoreUnavailable) as info:
        KeyStore(f"postgresql://u:secret@127.0.0.1:{port}/db?connect_timeout=2")
    message = str(info.value)
    assert f"cannot connect to PostgreSQL at postgresql://127.0.0.1:{port}/db" in message
    assert "check that PostgreSQL runs there" in message and "secret" not in message


def test_a_key_schema_newer_than_the_code_says_to_upgrade(postgres_url: str) -> None:
    KeyStore(postgres_url).close()
    with psycopg.connect(postgres_url) as conn:
        conn.execute("UPDATE auditbird_service_meta SET value = %s", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(StoreUnavailable) as info:
        KeyStore(postgres_url)
    message = str(info.value)
    assert f"key tables of schema version {SCHEMA_VERSION + 1}, newer than this auditbird" in message
    assert "upgrade auditbird" in message


def test_no_key_tables_and_no_right_to_create_them_says_who_can(
    postgres_server: Any, postgres_url: str
) -> None:
    role = f"r_{uuid.uuid4().hex[:8]}"
    with postgres_server.admin() as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN')  # PostgreSQL 15: no CREATE on public for others
    url = postgres_url.replace("postgresql://auditbird@", f"postgresql://{role}@", 1)
    with pytest.raises(StoreUnavailable) as info:
        KeyStore(url)
    assert "has no auditbird key tables" in str(info.value)
    assert "as the database owner" in str(info.value)
    with psycopg.connect(postgres_url) as conn:  # nothing half-created
        (tables,) = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'auditbird%'"
        ).fetchone()
    assert tables == 0
    KeyStore(postgres_url).close()  # the owner creates them, then grants the service role its rights
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "{role}"')
    with KeyStore(url) as keys:
        assert keys.verify(keys.create(workspace="acme", scope="read").secret) is not None


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("AUDITBIRD_URL", "AUDITBIRD_KEYS")}
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "auditbird", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "command", [["keys", "list"], ["keys", "create", "--workspace", "a", "--scope", "read"]]
)
def test_the_keys_cli_reports_a_refused_keys_database_in_one_line(tmp_path: Path, command: list[str]) -> None:
    url = f"postgresql://u:secret@127.0.0.1:{_closed_port()}/db?connect_timeout=2"
    done = _cli(*command, "--keys", url, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "cannot connect to PostgreSQL" in done.stderr
    assert "secret" not in done.stderr + done.stdout


def test_serve_refuses_a_newer_key_schema_in_one_line_before_listening(
    tmp_path: Path, postgres_url: str
) -> None:
    KeyStore(postgres_url).close()
    with psycopg.connect(postgres_url) as conn:
        conn.execute("UPDATE auditbird_service_meta SET value = %s", (str(SCHEMA_VERSION + 1),))
    done = _cli("serve", "--store", "sqlite:///audit.db", "--keys", postgres_url, "--port", "1", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "upgrade auditbird" in done.stderr, done.stderr


def test_keys_create_list_and_revoke_on_the_store_database(tmp_path: Path, postgres_url: str) -> None:
    created = _cli(
        "keys", "create", "--store", postgres_url, "--workspace", "acme", "--scope", "admin", cwd=tmp_path
    )
    assert created.returncode == 0, created.stderr
    assert f"keys database: {postgres_url.replace('auditbird@', '')}" in created.stdout
    token = created.stdout.strip().splitlines()[-1]
    key_id = token.split("_")[1]
    listed = _cli("--store", postgres_url, "keys", "list", "--json", cwd=tmp_path)
    assert [line for line in listed.stdout.splitlines() if key_id in line], listed.stdout
    assert not (tmp_path / "auditbird.keys.db").exists()  # nothing went to a local file
    with KeyStore(postgres_url) as keys:
        assert keys.verify(token) is not None
    revoked = _cli("keys", "revoke", key_id, "--store", postgres_url, cwd=tmp_path)
    assert revoked.returncode == 0, revoked.stderr
    with KeyStore(postgres_url) as keys:
        assert keys.verify(token) is None
