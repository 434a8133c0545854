"""Secrets stay secret (issue #10 items 10 and 11): store URLs in errors and logs, the key file's
mode, key verification, viewer-link signatures and /metrics."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from auditbird.service import KeyStore, create_app
from auditbird.service.viewer_links import Grant, ViewerLinks
from auditbird.stores import open_store, redact_url
from tests.plugins.service import SERVE, LiveServer, free_port, start_server

SECRET = "p.SECRETTOKEN0123456789"

BAD_URLS = [
    f"tinybird://{SECRET}@api.tinybird.co?region=eu",  # a host and a region
    f"tinybird://api.tinybird.co?token={SECRET}&region=zz",
    f"tinybird://{SECRET}@api.tinybird.co?bogus=1",  # an unknown option
    f"tinybird+http://{SECRET}@?region=",  # no host
    f"tinybird://user:{SECRET}@host:notaport/x",
    f"tinybird+https://{SECRET}@[::1/x",  # not a URL at all
    f"bogus://{SECRET}@host",  # an unknown scheme
]


def _env(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "AUDITBIRD_RATE_LIMIT": "0", "PYTHONUNBUFFERED": "1"}
    env.pop("TINYBIRD_TOKEN", None)
    env.pop("AUDITBIRD_URL", None)
    env["AUDITBIRD_KEYS"] = str(tmp_path / "k.keys.db")
    return env


@pytest.mark.timeout(300)
@pytest.mark.parametrize("url", BAD_URLS)
def test_a_token_in_a_bad_store_url_is_in_no_output(tmp_path: Path, url: str) -> None:
    outputs = []
    for args in (["query"], ["publish", '{"id": "a:1", "action": "a.b"}'], ["log", "a:1"]):
        done = subprocess.run(
            [sys.executable, "-c", SERVE, "--store", url, *args],
            env=_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode != 0
        outputs.append(done.stdout + done.stderr)
    serve = subprocess.run(
        [sys.executable, "-c", SERVE, "--store", url, "serve", "--port", str(free_port())],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert serve.returncode != 0
    outputs.append(serve.stdout + serve.stderr)
    for text in outputs:
        assert SECRET not in text and "SECRETTOKEN" not in text
    assert "error" in outputs[0].lower()  # still an error that says what is wrong


def test_open_store_errors_carry_no_credentials() -> None:
    for url in BAD_URLS:
        with pytest.raises(Exception) as info:
            open_store(url)
        chained: BaseException | None = info.value
        while chained is not None:  # a traceback prints every chained exception's message
            assert "SECRETTOKEN" not in str(chained)
            chained = chained.__cause__ or (None if chained.__suppress_context__ else chained.__context__)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("sqlite:///audit.db", "sqlite:///audit.db"),
        ("sqlite:////abs/audit.db?synchronous=NORMAL", "sqlite:////abs/audit.db?synchronous=NORMAL"),
        (f"tinybird://{SECRET}@api.tinybird.co", "tinybird://api.tinybird.co"),
        (f"tinybird://?token={SECRET}&region=eu", "tinybird://?token=***&region=eu"),
        (f"https://user:{SECRET}@example.com:8443/x", "https://example.com:8443/x"),
        (f"tinybird+https://{SECRET}@[::1/x", "tinybird+https://[::1/x"),
    ],
)
def test_urls_are_shown_as_given_minus_credentials(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_serve_names_its_store_as_given(live_server: LiveServer) -> None:
    assert f"serving sqlite:///{live_server.db_path} " in live_server.log_path.read_text()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_key_file_is_private_from_its_first_byte(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old = os.umask(0o022)
    try:
        # Created 0600, not chmod-ed afterwards: a chmod would leave a window where it is readable.
        monkeypatch.setattr(os, "chmod", lambda *a, **k: pytest.fail("chmod after the fact"))
        keys = KeyStore(tmp_path / "a.keys.db")
        keys.create(workspace="A", scope="read")
        links = ViewerLinks(tmp_path / "b.keys.db")
        links.sign(Grant("A", 2**40))
        for name in ("a.keys.db", "a.keys.db-wal", "a.keys.db-shm", "b.keys.db"):
            assert _mode(tmp_path / name) == 0o600, name
        keys.close()
        links.close()
    finally:
        os.umask(old)


def test_an_unknown_key_id_costs_what_a_known_one_costs(tmp_path: Path) -> None:
    """No timing threshold: the same work is done (the same SQLite reads, one hash, one compare)."""
    keys = KeyStore(tmp_path / "t.keys.db")
    token = keys.create(workspace="A", scope="read").secret
    _, key_id, secret = token.split("_", 2)
    statements: list[str] = []
    keys._conn.set_trace_callback(statements.append)
    counts = []
    for candidate in (token, f"ab_{'f' * len(key_id)}_{secret}"):
        statements.clear()
        for _ in range(20):
            keys.verify(candidate)
        counts.append(len([s for s in statements if s.lstrip().upper().startswith("SELECT")]))
    assert counts[0] == counts[1]
    assert keys.verify(token) is not None and keys.verify(f"ab_{'f' * len(key_id)}_{secret}") is None


def test_a_viewer_link_with_anything_after_its_signature_is_refused(tmp_path: Path) -> None:
    links = ViewerLinks(tmp_path / "v.keys.db")
    token = links.sign(Grant("A", 2**45))
    assert links.verify(token) is not None
    for junk in ("=", "==", "!", "\n", " ", "A", "%", "\x00", "*"):
        assert links.verify(token + junk) is None, repr(junk)
    body, _, mac = token.rpartition(".")
    assert links.verify(f"{body}.{mac[:-1]}") is None
    assert links.verify(f"{body}=.{mac}") is None  # padding or junk in the claims part too
    assert links.verify(f"{body}!.{mac}") is None


def test_metrics_without_a_token_have_no_per_tenant_figures(tmp_path: Path) -> None:
    keys = KeyStore(tmp_path / "m.keys.db")
    key = keys.create(workspace="tenant-secret-name", scope="admin").secret
    with TestClient(create_app(f"sqlite:///{tmp_path / 'm.db'}", keys=keys)) as c:
        c.post("/v1/events", json={"id": "x:1", "action": "a.b"}, headers={"Authorization": f"Bearer {key}"})
        text = c.get("/metrics").text
    assert "auditbird_events_written" not in text  # a total still moves when one tenant writes
    assert "tenant-secret-name" not in text and "workspace=" not in text


def test_metrics_with_a_token_need_it_and_show_per_tenant_figures(tmp_path: Path) -> None:
    server = start_server(tmp_path, AUDITBIRD_METRICS_TOKEN="metrics-s3cret")
    try:
        key = server.mint("tenant-a", "admin")
        with server.client(key) as c:
            assert c.post("/v1/events", json={"id": "x:1", "action": "a.b"}).status_code == 201
        assert httpx.get(f"{server.url}/metrics").status_code == 401
        wrong = httpx.get(f"{server.url}/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.headers["content-type"] == "application/problem+json"
        right = httpx.get(f"{server.url}/metrics", headers={"Authorization": "Bearer metrics-s3cret"})
        assert right.status_code == 200
        assert 'auditbird_workspace_events_written_total{workspace="tenant-a"} 1' in right.text
        assert "metrics-s3cret" not in server.log_path.read_text()
    finally:
        server.stop()


def test_serve_takes_a_metrics_token_option(tmp_path: Path) -> None:
    port = free_port()
    env = _env(tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE, "--store", f"sqlite:///{tmp_path / 'o.db'}", "serve"]
        + ["--port", str(port), "--metrics-token", "opt-token", "--log-level", "warning"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        import time

        for _ in range(300):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert httpx.get(f"http://127.0.0.1:{port}/metrics").status_code == 401
        ok = httpx.get(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": "Bearer opt-token"})
        assert ok.status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_the_keys_db_of_a_running_server_is_private(live_server: LiveServer) -> None:
    live_server.mint("mode-check", "read")
    for path in (live_server.keys_path, Path(f"{live_server.keys_path}-wal")):
        if path.exists():
            assert _mode(path) == 0o600, path
    conn = sqlite3.connect(live_server.keys_path)
    conn.close()
