"""The admin API for log streams (``/v1/streams``) on a real ``auditbird serve``, and the
streams' figures in ``/metrics``: admin keys only, the key's workspace only."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from auditbird.streams import Backoff, StreamRunner

from .live_server import EXE
from .plugins.service import LiveServer
from .streams_support import WebhookReceiver

FAST = Backoff(0.001, 0.02)


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, start_service: Callable[..., LiveServer]
) -> Iterator[LiveServer]:
    # The receivers listen on loopback, which streams added over the API may reach only when
    # the operator allows it: for the server, and for the runners these tests run in-process.
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AUDITBIRD_STREAM_HOSTS", "127.0.0.1")
        yield start_service(tmp_path_factory.mktemp("streams-api"), AUDITBIRD_STREAM_HOSTS="127.0.0.1")


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver().start()
    yield r
    r.stop()


def publish(server: LiveServer, key: str, n: int, action: str = "monitor.down") -> list[str]:
    events = [{"id": f"monitor:{i}", "action": action} for i in range(n)]
    with server.client(key) as c:
        r = c.post("/v1/events", json=events)
        r.raise_for_status()
        return [e["uid"] for e in r.json()["data"]]


def run_streams(server: LiveServer, workspace: str) -> None:
    runner = StreamRunner(f"sqlite:///{server.db_path}", workspace=workspace, backoff=FAST, batch=5)
    try:
        runner.run()
        assert not runner.errors, runner.errors
    finally:
        runner.close()


def test_admin_adds_a_webhook_the_runner_delivers_it_signed_and_the_cli_sees_it(
    server: LiveServer, receiver: WebhookReceiver
) -> None:
    admin, writer = server.mint("api-a", "admin"), server.mint("api-a", "write")
    with server.client(admin) as c:
        made = c.post("/v1/streams", json={"name": "siem", "kind": "webhook", "url": receiver.url})
        assert made.status_code == 201, made.text
        secret = made.json()["secret"]
        assert made.json()["data"]["options"]["secret"] == "***"
        uids = publish(server, writer, 7)
        # The stream's own creation is an event of the workspace: it is delivered first.
        assert c.get("/v1/streams/siem").json()["data"]["events_behind"] == 8
        run_streams(server, "api-a")
        assert receiver.events()[0]["action"] == "audit_log.stream_added"
        assert receiver.uids()[1:] == uids
        for headers, body in receiver.requests:
            Webhook(secret).verify(body, headers)
        listed = c.get("/v1/streams").json()["data"]
        assert [(s["name"], s["delivered"], s["events_behind"]) for s in listed] == [("siem", 8, 0)]
        assert secret not in c.get("/v1/streams").text
    # The CLI reads the same records through the same library functions.
    cli = subprocess.run(
        [EXE, "--store", f"sqlite:///{server.db_path}", "--workspace", "api-a", "streams", "list", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "AUDITBIRD_KEYS": str(server.keys_path)},
    )
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["delivered"] == 8


def test_streams_need_an_admin_key_and_another_workspace_sees_nothing(server: LiveServer) -> None:
    admin = server.mint("iso-a", "admin")
    with server.client(admin) as c:
        body = {"name": "private", "kind": "syslog", "address": "tcp://127.0.0.1:9"}
        assert c.post("/v1/streams", json=body).status_code == 201
    for scope in ("read", "write"):
        with server.client(server.mint("iso-a", scope)) as c:
            refused = c.get("/v1/streams")
            assert refused.status_code == 403 and "admin" in refused.json()["detail"]
            assert c.post("/v1/streams/private/pause").status_code == 403
    with server.client() as c:
        assert c.get("/v1/streams").status_code == 401
    other = server.mint("iso-b", "admin")
    with server.client(other) as c:
        assert c.get("/v1/streams").json() == {"data": []}
        # Another workspace's stream answers exactly as one that does not exist.
        for method, path in (
            ("GET", "/v1/streams/private"),
            ("DELETE", "/v1/streams/private"),
            ("POST", "/v1/streams/private/pause"),
            ("POST", "/v1/streams/private/rotate-secret"),
            ("GET", "/v1/streams/private/dead-letters"),
            ("POST", "/v1/streams/private/dead-letters/replay"),
        ):
            theirs, nobodys = c.request(method, path), c.request(method, path.replace("private", "nobody"))
            assert theirs.status_code == nobodys.status_code == 404, (method, path)
            assert theirs.json()["detail"] == nobodys.json()["detail"].replace("nobody", "private")
        # The same name is free in this workspace.
        assert c.post(
            "/v1/streams", json={"name": "private", "kind": "syslog", "address": "tcp://h:1"}
        ).is_success
    with server.client(admin) as c:
        assert c.get("/v1/streams/private").json()["data"]["options"]["port"] == 9


def test_dead_letters_are_listed_in_pages_and_replayed_once_the_receiver_is_fixed(
    server: LiveServer, receiver: WebhookReceiver
) -> None:
    admin, writer = server.mint("dl-a", "admin"), server.mint("dl-a", "write")
    receiver.status = 400
    with server.client(admin) as c:
        body = {
            "name": "hook",
            "kind": "webhook",
            "url": receiver.url,
            "max_attempts": 1,
            "filter": {"actions": ["monitor.down"]},
        }
        assert c.post("/v1/streams", json=body).status_code == 201
        uids = publish(server, writer, 6)
        run_streams(server, "dl-a")
        first = c.get("/v1/streams/hook/dead-letters", params={"limit": 4}).json()
        second = c.get("/v1/streams/hook/dead-letters", params={"after": first["next_after"]}).json()
        assert [d["uid"] for d in first["data"] + second["data"]] == uids
        assert second["next_after"] is None
        assert all("answered 400" in d["error"] and d["event"]["uid"] == d["uid"] for d in first["data"])
        status = c.get("/v1/streams/hook").json()["data"]
        assert status["dead_letters"] == 6 and status["failures"] == 6 and status["events_behind"] == 0
        # Still refused: the replay stops at the first, nothing is forgotten.
        again = c.post("/v1/streams/hook/dead-letters/replay")
        assert again.status_code == 502 and again.json() == {
            "replayed": 0,
            "remaining": 6,
            "error": again.json()["error"],
        }
        assert "answered 400" in again.json()["error"]
        receiver.status = 200
        done = c.post("/v1/streams/hook/dead-letters/replay")
        assert done.status_code == 200 and done.json() == {"replayed": 6, "remaining": 0, "error": None}
        assert receiver.uids() == uids
        assert c.get("/v1/streams/hook/dead-letters").json()["data"] == []


def test_pause_resume_rotate_and_remove(server: LiveServer, receiver: WebhookReceiver) -> None:
    admin, writer = server.mint("ops-a", "admin"), server.mint("ops-a", "write")
    with server.client(admin) as c:
        made = c.post(
            "/v1/streams",
            json={"name": "hook", "kind": "webhook", "url": receiver.url, "filter": {"actions": ["m.x"]}},
        )
        old = made.json()["secret"]
        assert made.json()["data"]["filter"] == "action in m.x"
        assert c.post("/v1/streams/hook/pause").json()["data"]["paused"] is True
        publish(server, writer, 2, action="m.y")
        wanted = publish(server, writer, 3, action="m.x")
        run_streams(server, "ops-a")
        assert receiver.requests == []  # paused: nothing delivered, nothing skipped
        assert c.get("/v1/streams/hook").json()["data"]["events_behind"] == 3  # only what matches
        rotated = c.post("/v1/streams/hook/rotate-secret", json={"grace_hours": 1})
        fresh = rotated.json()["secret"]
        assert fresh != old and fresh.startswith("whsec_")
        assert c.post("/v1/streams/hook/resume").json()["data"]["paused"] is False
        run_streams(server, "ops-a")
        assert receiver.uids() == wanted
        headers, body = receiver.requests[0]
        Webhook(fresh).verify(body, headers)
        Webhook(old).verify(body, headers)  # the grace period
        assert c.delete("/v1/streams/hook").status_code == 204
        assert c.get("/v1/streams/hook").status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"name": "f", "kind": "ndjson"}, 422, "operator"),
        ({"name": "w", "kind": "webhook", "url": "ftp://x/"}, 422, "http:// or https://"),
        ({"name": "w", "kind": "webhook"}, 422, "takes url"),
        ({"name": "w", "kind": "webhook", "url": "http://h/", "secret": "whsec_!!"}, 422, "secret"),
        ({"name": "s", "kind": "syslog", "address": "udp://h:1"}, 422, "tcp://HOST:PORT"),
        ({"name": "s", "kind": "syslog", "address": "tcp://h:1", "url": "http://h/"}, 422, "not url"),
        ({"name": "a b", "kind": "syslog", "address": "tcp://h:1"}, 422, "stream name"),
        ({"name": "x", "kind": "syslog", "address": "tcp://h:1", "port": 1}, 422, "port"),
        (
            {
                "name": "x",
                "kind": "syslog",
                "address": "tcp://h:1",
                "filter": {"actor_in": ["a"], "actor_not_in": ["b"]},
            },
            422,
            "not both",
        ),
        ({"name": "x", "kind": "syslog", "address": "tcp://h:1", "max_attempts": 0}, 422, "max_attempts"),
    ],
)
def test_bad_stream_definitions_are_refused_and_nothing_is_stored(
    server: LiveServer, body: dict[str, Any], status: int, says: str
) -> None:
    admin = server.mint("bad-a", "admin")
    with server.client(admin) as c:
        answer = c.post("/v1/streams", json=body)
        assert answer.status_code == status, answer.text
        assert says in answer.text
        assert c.get("/v1/streams").json() == {"data": []}


def test_a_second_stream_of_the_same_name_is_a_conflict(server: LiveServer) -> None:
    with server.client(server.mint("dup-a", "admin")) as c:
        body = {"name": "twice", "kind": "syslog", "address": "tcp://127.0.0.1:9"}
        assert c.post("/v1/streams", json=body).status_code == 201
        again = c.post("/v1/streams", json=body | {"address": "tcp://127.0.0.1:10"})
        assert again.status_code == 409 and "already has a stream named 'twice'" in again.json()["detail"]
        assert c.get("/v1/streams/twice").json()["data"]["options"]["port"] == 9


def _samples(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def test_metrics_show_stream_lag_and_failures_by_stream_only_to_the_token_holder(
    tmp_path: Path,
    start_service: Callable[..., LiveServer],
    receiver: WebhookReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = "metrics-token-for-this-test"
    # The receiver is on loopback: allowed for the servers and this process's runner, so the
    # test does not depend on the module's `server` fixture having set it first.
    monkeypatch.setenv("AUDITBIRD_STREAM_HOSTS", "127.0.0.1")
    hosts = {"AUDITBIRD_STREAM_HOSTS": "127.0.0.1"}
    server = start_service(tmp_path / "with-token", AUDITBIRD_METRICS_TOKEN=token, **hosts)
    open_server = start_service(tmp_path / "open", **hosts)
    receiver.status = 400
    for srv in (server, open_server):
        admin, writer = srv.mint("acme-corp", "admin"), srv.mint("acme-corp", "write")
        with srv.client(admin) as c:
            only = {"actions": ["monitor.down"]}
            refused = {
                "name": "siem-acme",
                "kind": "webhook",
                "url": receiver.url,
                "max_attempts": 1,
                "filter": only,
            }
            assert c.post("/v1/streams", json=refused).status_code == 201
            publish(srv, writer, 4)
            run_streams(srv, "acme-corp")  # 4 refusals, 4 dead letters
            behind = {"name": "later-acme", "kind": "syslog", "address": "tcp://127.0.0.1:9", "filter": only}
            assert c.post("/v1/streams", json=behind).status_code == 201
            publish(srv, writer, 3)  # not delivered: 3 behind each (siem-acme's are dead letters)

    scraped = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {token}"}).text
    figures = _samples(scraped)
    assert figures['auditbird_stream_events_behind{stream="later-acme",workspace="acme-corp"}'] == 7
    assert figures['auditbird_stream_events_behind{stream="siem-acme",workspace="acme-corp"}'] == 3
    assert figures['auditbird_stream_delivery_failures_total{stream="siem-acme",workspace="acme-corp"}'] == 4
    assert figures['auditbird_stream_dead_lettered_total{stream="siem-acme",workspace="acme-corp"}'] == 4
    assert figures['auditbird_stream_dead_letters{stream="siem-acme",workspace="acme-corp"}'] == 4
    assert figures['auditbird_stream_seconds_behind{stream="later-acme",workspace="acme-corp"}'] >= 0
    assert figures["auditbird_streams"] == 2 and figures["auditbird_streams_events_behind"] == 10

    assert figures["auditbird_streams_delivery_failures"] == 4
    assert figures["auditbird_streams_dead_letters"] == 4

    # Open /metrics: no stream figure at all, not even a total (it moves with one tenant's streams).
    open_text = httpx.get(f"{open_server.url}/metrics").text
    assert "auditbird_stream" not in open_text and "acme" not in open_text


def test_an_otlp_stream_keeps_its_headers_secret(server: LiveServer) -> None:
    with server.client(server.mint("otel-a", "admin")) as c:
        body = {
            "name": "otel",
            "kind": "otlp",
            "url": "http://127.0.0.1:4318",
            "headers": {"x-api-key": "k-123"},
        }
        made = c.post("/v1/streams", json=body)
        assert made.status_code == 201, made.text
        assert "secret" not in made.json()  # nothing made here to show once
        assert made.json()["data"]["options"] == {
            "url": "http://127.0.0.1:4318",
            "secret_headers": "***",
            "restricted": True,  # added over the API: every connection is checked
        }
        assert "k-123" not in c.get("/v1/streams").text
        bad = c.post("/v1/streams", json=body | {"name": "x", "headers": {"a\nb": "v"}})
        assert bad.status_code == 422 and "header name" in bad.json()["detail"]
        wrong = c.post(
            "/v1/streams", json={"name": "y", "kind": "syslog", "address": "tcp://h:1", "headers": {}}
        )
        assert wrong.status_code == 422 and "headers are for otlp" in wrong.json()["detail"]


def test_every_change_to_a_stream_is_an_event_of_the_workspace_without_its_secret(server: LiveServer) -> None:
    admin = server.mint("rec-a", "admin", name="ops admin")
    with server.client(admin) as c:
        made = c.post(
            "/v1/streams", json={"name": "out", "kind": "webhook", "url": "https://x.example/h?t=tok"}
        )
        secret = made.json()["secret"]
        c.post("/v1/streams/out/pause")
        c.post("/v1/streams/out/resume")
        fresh = c.post("/v1/streams/out/rotate-secret").json()["secret"]
        c.post("/v1/streams/out/dead-letters/replay")
        assert c.delete("/v1/streams/out").status_code == 204
        assert c.get("/v1/streams/nobody").status_code == 404  # a refusal changes nothing: no event
    with server.client(server.mint("rec-a", "read")) as c:
        page = c.get("/v1/events", params={"event_id": "log_stream:out", "limit": 50})
        assert page.status_code == 200, page.text
        events = list(reversed(page.json()["data"]))
    assert [e["action"] for e in events] == [
        "audit_log.stream_added",
        "audit_log.stream_paused",
        "audit_log.stream_resumed",
        "audit_log.stream_secret_rotated",
        "audit_log.stream_dead_letters_replayed",
        "audit_log.stream_removed",
    ]
    assert {e["actor"]["name"] for e in events} == {"ops admin"}
    assert events[0]["targets"] == [{"id": "out", "type": "log_stream"}]
    assert events[0]["metadata"]["kind"] == "webhook"
    text = json.dumps(events)
    assert secret not in text and fresh not in text and "tok" not in text
    with server.client(server.mint("rec-b", "read")) as c:  # another workspace sees none of it
        assert c.get("/v1/events", params={"event_id": "log_stream:out"}).json()["data"] == []


def test_an_operator_allowlist_limits_where_api_streams_may_deliver(
    tmp_path: Path, start_service: Callable[..., LiveServer]
) -> None:
    server = start_service(tmp_path / "allow", AUDITBIRD_STREAM_HOSTS="hooks.example.com, .siem.example")
    with server.client(server.mint("allow-a", "admin")) as c:

        def add(name: str, **destination: str) -> httpx.Response:
            kind = "syslog" if "address" in destination else "webhook"
            return c.post("/v1/streams", json={"name": name, "kind": kind, **destination})

        assert add("a", url="https://hooks.example.com/in").status_code == 201
        assert add("b", url="https://eu.siem.example/in").status_code == 201
        assert add("c", address="tls://logs.siem.example:6514").status_code == 201
        for name, destination in (
            ("d", {"url": "http://127.0.0.1:8080/"}),  # the server's own network
            ("e", {"url": "https://evilhooks.example.com/"}),
            ("f", {"url": "https://siem.example.attacker.net/"}),
            ("g", {"address": "tcp://169.254.169.254:514"}),
        ):
            refused = add(name, **destination)
            assert refused.status_code == 422 and "AUDITBIRD_STREAM_HOSTS" in refused.json()["detail"], name
        assert [s["name"] for s in c.get("/v1/streams").json()["data"]] == ["a", "b", "c"]
