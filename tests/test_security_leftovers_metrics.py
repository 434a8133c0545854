"""Open ``/metrics`` shows nothing derived from any tenant's streams or events: with no metrics
token, tenant A could otherwise watch tenant B's stream lag, failures and traffic rise and fall."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from auditbird.service import create_app
from auditbird.service.keys import KeyStore
from auditbird.streams import StreamTarget, create_stream


def _samples(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def _scrape(tmp_path: Path, token: str | None) -> str:
    db = tmp_path / "m.db"
    keys = KeyStore(tmp_path / "m.keys.db")
    writer = keys.create(workspace="tenant-b", scope="write").secret
    with TestClient(create_app(f"sqlite:///{db}", keys=keys, metrics_token=token)) as c:
        sent = [{"id": f"x:{i}", "action": "a.b"} for i in range(3)]
        assert (
            c.post("/v1/events", json=sent, headers={"Authorization": f"Bearer {writer}"}).status_code == 201
        )
        # tenant B's stream, three events behind (nothing runs it)
        create_stream(f"sqlite:///{db}", "tenant-b", "siem-b", StreamTarget.syslog("tcp://127.0.0.1:9"))
        c.get("/v1/events", headers={"Authorization": f"Bearer {writer}"})
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return c.get("/metrics", headers=headers).text


def test_open_metrics_show_no_stream_or_event_figures(tmp_path: Path) -> None:
    text = _scrape(tmp_path, None)
    names = {
        line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")
    }
    assert not any(n.startswith(("auditbird_streams", "auditbird_stream_")) for n in names), names
    assert not any(n.startswith(("auditbird_events_written", "auditbird_events_read")) for n in names), names
    assert "tenant-b" not in text and "siem-b" not in text
    # nor anything a request moves (requests, latency, store errors): only the build stays open
    assert names == {"auditbird_build_info"}, names


def test_the_token_holder_gets_stream_and_event_figures(tmp_path: Path) -> None:
    figures = _samples(_scrape(tmp_path, "metrics-token-x"))
    assert figures["auditbird_streams"] == 1
    assert figures["auditbird_streams_events_behind"] == 3
    assert figures['auditbird_stream_events_behind{stream="siem-b",workspace="tenant-b"}'] == 3
    assert figures["auditbird_events_written_total"] == 3
    assert figures['auditbird_workspace_events_written_total{workspace="tenant-b"}'] == 3
