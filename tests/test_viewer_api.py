"""The viewer's server side: viewer links, the chart counts, the live stream, the page itself.

Run with ``pytest -p tests.plugins.browser tests/test_viewer_api.py`` (a real ``auditbird serve``).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from auditbird.service.viewer_links import Grant, ViewerLinks, parse_duration, parse_target
from tests.plugins.browser import AUDITBIRD, LiveServer, cli


def _now() -> int:
    return int(time.time() * 1000)


@pytest.fixture
def links(tmp_path: Path) -> ViewerLinks:
    return ViewerLinks(tmp_path / "audit.keys.db")


@pytest.fixture(scope="module")
def keys(viewer_server: LiveServer) -> dict[str, str]:
    s = viewer_server
    found = {
        "read_a": s.key("A"),
        "write_a": s.key("A", "write"),
        "write_b": s.key("B", "write"),
        "admin_b": s.key("B", "admin"),
    }
    s.publish(found["write_a"], [{"id": f"monitor:{i}", "action": "monitor.down"} for i in range(5)])
    s.publish(found["write_b"], [{"id": "secret:1", "action": "monitor.down", "metadata": {"x": "SECRET"}}])
    return found


def _get(server: LiveServer, path: str, token: str | None, **params: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(server.url + path, params=params, headers=headers, timeout=30)


# -- the link itself -----------------------------------------------------------------------


def test_a_link_carries_its_workspace_and_restrictions(links: ViewerLinks) -> None:
    grant = Grant("acme", _now() + 60_000, actor_id="u1", target_type="monitor", target_id="1:2")
    found = links.verify(links.sign(grant))
    assert found is not None
    assert (found.workspace, found.actor_id, found.target_type, found.target_id) == (
        "acme",
        "u1",
        "monitor",
        "1:2",
    )


def test_a_forged_expired_or_foreign_link_is_refused(links: ViewerLinks, tmp_path: Path) -> None:
    token = links.sign(Grant("acme", _now() + 60_000))
    body, _, mac = token.rpartition(".")
    forged_body = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1]
    assert links.verify(f"{forged_body}.{mac}") is None
    assert links.verify(body + ".") is None
    assert links.verify("ab_x_y") is None
    assert links.verify(links.sign(Grant("acme", _now() - 1))) is None
    other = ViewerLinks(tmp_path / "other.keys.db")  # another server's secret
    assert other.verify(token) is None


def test_rotating_the_secret_revokes_every_link(links: ViewerLinks) -> None:
    token = links.sign(Grant("acme", _now() + 60_000))
    assert links.verify(token) is not None
    links.rotate()
    assert links.verify(token) is None


def test_durations_and_targets_are_parsed_or_explained() -> None:
    assert parse_duration("1h") == 3_600_000
    assert parse_duration("15m") == 900_000
    for bad in ("", "1", "1y", "31d", "0s"):
        with pytest.raises(ValueError, match="--expires"):
            parse_duration(bad)
    assert parse_target("page:status:main") == ("page", "status:main")
    with pytest.raises(ValueError, match="TYPE:ID"):
        parse_target("monitor")


def test_the_cli_prints_the_link_alone_on_its_last_line(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'x.db'}"
    out = subprocess.run(
        [*AUDITBIRD, "--store", store, "keys", "viewer-link", "--workspace", "A", "--target", "monitor:1"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    last = out.strip().splitlines()[-1]
    assert last.startswith("http://127.0.0.1:8000/#vl=abl1.")
    grant = ViewerLinks(tmp_path / "x.keys.db").verify(last.split("#vl=")[1])
    assert grant is not None and grant.target_type == "monitor" and grant.target_id == "1"
    bad = subprocess.run(
        [*AUDITBIRD, "--store", store, "keys", "viewer-link", "--workspace", "A", "--expires", "1y"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and bad.stderr.startswith("error: --expires")


def test_a_link_made_by_the_cli_works_after_the_server_restarts(viewer_server: LiveServer) -> None:
    link = viewer_server.viewer_link("--workspace", "A")
    token = link.split("#vl=")[1]
    assert _get(viewer_server, "/v1/viewer/session", token).json()["workspace"] == "A"
    again = LiveServer(viewer_server.db).start()  # a second server process over the same files
    try:
        r = _get(again, "/v1/viewer/session", token)
        assert r.status_code == 200 and r.json()["kind"] == "viewer_link"
    finally:
        again.stop()


# -- the routes ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/viewer/session", "/v1/histogram", "/v1/viewer/actions", "/v1/stream"])
def test_viewer_routes_need_a_credential_that_can_read(
    viewer_server: LiveServer, keys: dict[str, str], path: str
) -> None:
    assert _get(viewer_server, path, None).status_code == 401
    assert _get(viewer_server, path, "abl1.bogus.sig").status_code == 401
    r = _get(viewer_server, path, keys["write_a"])
    assert r.status_code == 403
    assert r.headers["content-type"].startswith("application/problem+json")


def test_the_histogram_counts_only_the_credentials_workspace(
    viewer_server: LiveServer, keys: dict[str, str]
) -> None:
    a = _get(viewer_server, "/v1/histogram", keys["read_a"], since="1h", buckets=10).json()
    b = _get(viewer_server, "/v1/histogram", keys["admin_b"], since="1h", buckets=10).json()
    total = lambda h: sum(sum(c.values()) for c in h["counts"])  # noqa: E731
    assert total(a) == 5 and total(b) == 1
    assert len(a["starts"]) in (10, 11) and abs(a["bucket_ms"] - 360_000) <= 1  # aligned: one more bar
    assert all("audit_log.viewed" not in c for c in a["counts"])  # reading the log is not activity
    assert _get(viewer_server, "/v1/histogram", keys["read_a"], workspace="B").status_code == 403
    assert _get(viewer_server, "/v1/histogram", keys["read_a"], since="nonsense").status_code == 422
    # every bar counts exactly the events of its own interval
    times = [
        e["timestamp"] for e in _get(viewer_server, "/v1/events", keys["read_a"], limit=100).json()["data"]
    ]
    for start, counts in zip(a["starts"], a["counts"], strict=True):
        inside = [t for t in times if start <= t < start + a["bucket_ms"]]
        assert sum(counts.values()) == len(inside)
    assert a["starts"][0] % a["bucket_ms"] == 0
    actions = _get(viewer_server, "/v1/viewer/actions", keys["read_a"]).json()
    assert actions["seen"]["monitor.down"] == 5


def test_an_event_in_detail_comes_with_its_stored_row(
    viewer_server: LiveServer, keys: dict[str, str]
) -> None:
    uid = _get(viewer_server, "/v1/events", keys["read_a"], limit=1).json()["data"][0]["uid"]
    body = _get(viewer_server, f"/v1/viewer/events/{uid}", keys["read_a"]).json()
    assert body["event"]["uid"] == uid
    assert body["row"]["actor"] == '{"id":"","name":"system"}' and body["row"]["targets"] == "[]"
    assert _get(viewer_server, f"/v1/viewer/events/{uid}", keys["admin_b"]).status_code == 404


def test_the_stream_sends_new_matching_events_and_nothing_else(
    viewer_server: LiveServer, keys: dict[str, str]
) -> None:
    got: list[dict[str, Any]] = []
    headers = {"Authorization": f"Bearer {keys['read_a']}"}
    with httpx.stream(
        "GET",
        viewer_server.url + "/v1/stream",
        params={"action": "incident.created", "since": str(_now())},
        headers=headers,
        timeout=30,
    ) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        lines = r.iter_lines()
        assert next(lines) == "retry: 1000"
        viewer_server.publish(keys["write_a"], [{"id": "monitor:9", "action": "monitor.down"}])
        viewer_server.publish(keys["write_b"], [{"id": "incident:b", "action": "incident.created"}])
        viewer_server.publish(keys["write_a"], [{"id": "incident:a", "action": "incident.created"}])
        deadline = time.monotonic() + 10
        for line in lines:
            if line.startswith("data:"):
                got.extend(json.loads(line[5:]))
                if any(e["id"] == "incident:a" for e in got):
                    break
            assert time.monotonic() < deadline, "no event within 10 s"
    assert [(e["id"], e["workspace"]) for e in got] == [("incident:a", "A")]


def test_the_page_ships_its_own_assets_under_a_strict_content_security_policy(
    viewer_server: LiveServer,
) -> None:
    r = httpx.get(viewer_server.url + "/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    for asset in ("static/dom.js", "static/app.js", "static/app.css", "static/favicon.svg"):
        assert asset in r.text
        assert httpx.get(f"{viewer_server.url}/{asset}").status_code == 200
    assert "http" not in r.text.replace("http-equiv", "").split("<body>")[0].replace("://www.w3.org", "")


def test_the_auth_hook_accepts_only_unrestricted_links(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from auditbird.service import KeyStore
    from auditbird.service.viewer import viewer_link_key

    path = tmp_path / "audit.keys.db"
    app = SimpleNamespace(state=SimpleNamespace(auditbird=SimpleNamespace(keys=KeyStore(path))))
    links = ViewerLinks(path)
    key = viewer_link_key(app, links.sign(Grant("A", _now() + 60_000)))
    assert key is not None and key.workspace == "A" and key.scope == "read"
    assert viewer_link_key(app, links.sign(Grant("A", _now() + 60_000, actor_id="u1"))) is None
    assert viewer_link_key(app, links.sign(Grant("A", _now() - 1))) is None
    assert viewer_link_key(app, "ab_x_y") is None


def test_a_live_tail_ends_when_its_key_is_revoked(viewer_server: LiveServer) -> None:
    key = viewer_server.key("A")
    key_id = key.split("_")[1]
    with httpx.stream(
        "GET", viewer_server.url + "/v1/stream", headers={"Authorization": f"Bearer {key}"}, timeout=30
    ) as r:
        assert r.status_code == 200
        lines = r.iter_lines()
        assert next(lines) == "retry: 1000"
        cli("--store", viewer_server.store_url, "keys", "revoke", key_id)
        deadline = time.monotonic() + 10
        for line in lines:
            if line.startswith("event: expired"):
                break
            assert time.monotonic() < deadline, "the stream went on after the key was revoked"


def test_the_chart_and_the_actions_seen_work_over_any_histogram_store(tmp_path: Path) -> None:
    """The viewer asks the store's tiers, not its class: over the library's MemoryStore (no
    file, not SQLite) the chart counts what was published, and a link's restriction holds."""
    from fastapi.testclient import TestClient

    from auditbird.service import KeyStore, create_app
    from auditbird.testing import MemoryStore

    keys = KeyStore(tmp_path / "m.keys.db")
    token = keys.create(workspace="A", scope="admin").secret
    link = ViewerLinks(keys.path).sign(Grant("A", _now() + 60_000, actor_id="u1"))
    with TestClient(create_app(MemoryStore(), keys=keys)) as c:
        auth = {"Authorization": f"Bearer {token}"}
        events = [{"id": f"m:{i}", "action": "monitor.down", "actor": {"id": f"u{i % 2}"}} for i in range(5)]
        assert c.post("/v1/events", json=events, headers=auth).status_code == 201
        hist = c.get("/v1/histogram", params={"since": "1h", "buckets": 4}, headers=auth).json()
        assert sum(sum(bar.values()) for bar in hist["counts"]) == 5
        seen = c.get("/v1/viewer/actions", headers=auth).json()["seen"]
        assert seen == {"monitor.down": 5}
        as_link = c.get("/v1/viewer/actions", headers={"Authorization": f"Bearer {link}"}).json()
        assert as_link["seen"] == {"monitor.down": 2}  # u1's events only: m:1, m:3
