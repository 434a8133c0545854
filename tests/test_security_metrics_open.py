"""An anonymous scrape of open ``/metrics`` tells nothing of any tenant's requests.

A reviewer's proof: with no metrics token, ``auditbird_http_requests_total{route="/v1/events",
status="201"}`` went 0 -> 3 when tenant B published, and the ``/v1/streams`` series moved when B
added a stream. Whatever a tenant's request moves (counts and latency by route, refusals, store
errors) is for the metrics token's holder only; open ``/metrics`` is the same bytes before and
after any tenant does anything.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from auditbird import __version__
from auditbird.service import create_app
from auditbird.service.keys import KeyStore
from auditbird.service.viewer_links import Grant, ViewerLinks

TOKEN = "metrics-token-for-this-test"


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def _tenant_b_does_everything(c: TestClient, keys: KeyStore) -> None:
    """Tenant B's traffic of every kind, each answer checked (so each one really happened)."""
    admin = keys.create(workspace="tenant-b", scope="admin").secret
    reader = keys.create(workspace="tenant-b", scope="read").secret
    slow = keys.create(workspace="tenant-b", scope="admin", rate=0.5).secret  # one request, then 429
    sent = [{"id": f"x:{i}", "action": "a.b"} for i in range(3)]
    assert c.post("/v1/events", json=sent, headers=_bearer(admin)).status_code == 201
    stream = {"name": "siem-b", "kind": "syslog", "address": "tcp://127.0.0.1:9"}
    assert c.post("/v1/streams", json=stream, headers=_bearer(admin)).status_code == 201, "stream add"
    assert c.get("/v1/streams", headers=_bearer(admin)).status_code == 200
    assert c.get("/v1/events", headers=_bearer(reader)).status_code == 200
    link = ViewerLinks(keys).sign(Grant("tenant-b", int(time.time() * 1000) + 3_600_000))
    assert c.get("/v1/viewer/events", headers=_bearer(link)).status_code == 200
    assert c.get("/v1/events", headers=_bearer("ab_not_a_key")).status_code == 401
    assert c.post("/v1/events", json=sent, headers=_bearer(reader)).status_code == 403
    assert c.get("/v1/events/no-such-uid", headers=_bearer(reader)).status_code == 404
    assert c.post("/v1/events", json={"id": "x:9"}, headers=_bearer(admin)).status_code == 422
    assert c.get("/v1/events", headers=_bearer(slow)).status_code == 200
    assert c.get("/v1/events", headers=_bearer(slow)).status_code == 429


@pytest.fixture
def keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> KeyStore:
    monkeypatch.setenv("AUDITBIRD_STREAM_HOSTS", "127.0.0.1")  # a syslog stream on loopback
    return KeyStore(tmp_path / "m.keys.db")


def test_an_anonymous_scrape_is_the_same_before_and_after_another_tenants_requests(
    tmp_path: Path, keys: KeyStore
) -> None:
    with TestClient(create_app(f"sqlite:///{tmp_path / 'm.db'}", keys=keys)) as c:
        before = c.get("/metrics")
        _tenant_b_does_everything(c, keys)
        after = c.get("/metrics")
    assert before.status_code == after.status_code == 200
    assert after.text == before.text  # byte for byte: no figure moved, not even the scrapes'
    # What stays open moves with no request: the build, for a scraper to tell the server is up.
    samples = [line for line in after.text.splitlines() if line and not line.startswith("#")]
    assert samples == [f'auditbird_build_info{{version="{__version__}"}} 1.0']
    assert "--metrics-token" in after.text  # the HELP line says where the request figures went


def test_the_token_holder_still_gets_every_request_figure(tmp_path: Path, keys: KeyStore) -> None:
    app = create_app(f"sqlite:///{tmp_path / 'm.db'}", keys=keys, metrics_token=TOKEN)
    with TestClient(app) as c:
        _tenant_b_does_everything(c, keys)
        assert c.get("/metrics").status_code == 401
        text = c.get("/metrics", headers=_bearer(TOKEN)).text
    figures = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            figures[name] = float(value)
    requests = "auditbird_http_requests_total"
    assert figures[f'{requests}{{method="POST",route="/v1/events",status="201"}}'] == 1
    assert figures[f'{requests}{{method="POST",route="/v1/streams",status="201"}}'] == 1
    assert figures[f'{requests}{{method="GET",route="/v1/viewer/events",status="200"}}'] == 1
    assert figures[f'{requests}{{method="GET",route="/v1/events",status="401"}}'] == 1
    assert figures[f'{requests}{{method="GET",route="/v1/events",status="429"}}'] == 1
    assert figures[f'{requests}{{method="GET",route="/v1/events/{{uid:path}}",status="404"}}'] == 1
    assert figures[f'{requests}{{method="POST",route="/v1/events",status="403"}}'] == 1
    assert figures[f'{requests}{{method="POST",route="/v1/events",status="422"}}'] == 1
    assert figures['auditbird_http_request_duration_seconds_count{route="/v1/events"}'] == 7
    assert figures["auditbird_rate_limited_total"] == 1
    assert figures["auditbird_store_errors_total"] == 0
    assert figures["auditbird_events_written_total"] == 3
    assert figures['auditbird_workspace_events_written_total{workspace="tenant-b"}'] == 3
    assert figures["auditbird_streams"] == 1
    assert figures[f'auditbird_build_info{{version="{__version__}"}}'] == 1
