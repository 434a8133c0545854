"""The admin API for log streams against what a hostile caller sends: bodies too big to read
before the key is checked, destinations inside the server's network, secrets in URLs."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator

import pytest

from auditbird.service.routes_streams import MAX_BODY_BYTES
from auditbird.streams import (
    Backoff,
    StreamRegistry,
    StreamRunner,
    StreamTarget,
    create_stream,
    replay_dead_letters,
)
from auditbird.streams.egress import EgressPolicy, EgressRefused

from .plugins.service import LiveServer
from .streams_support import WebhookReceiver


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, start_service: Callable[..., LiveServer]) -> LiveServer:
    return start_service(tmp_path_factory.mktemp("streams-sec"))


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver().start()
    yield r
    r.stop()


def test_a_big_body_without_a_key_is_refused_before_it_is_read(server: LiveServer) -> None:
    big = b'{"name": "x", "kind": "webhook", "url": "' + b"a" * (MAX_BODY_BYTES + 10) + b'"}'
    with server.client() as c:
        for path in ("/v1/streams", "/v1/streams/x/rotate-secret"):
            declared = c.post(path, content=big, headers={"content-type": "application/json"})
            assert declared.status_code == 413, (path, declared.text)
            assert "64 KiB" in declared.json()["detail"]

            def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
                for i in range(0, len(big), 8192):
                    yield big[i : i + 8192]

            chunked = c.post(path, content=chunks(), headers={"content-type": "application/json"})
            assert chunked.status_code == 413, (path, chunked.text)
        # A small body still reaches the key check, and other routes keep their own limits.
        assert c.post("/v1/streams", json={"name": "x"}).status_code == 401
        assert c.post("/v1/events", content=big).status_code == 401


def test_a_body_within_the_limit_reaches_the_route_whole(server: LiveServer) -> None:
    with server.client(server.mint("sec-a", "admin")) as c:
        made = c.post(
            "/v1/streams",
            json={"name": "ndj", "kind": "webhook", "url": "https://hooks.example.com/x", "max_attempts": 7},
        )
        assert made.status_code == 201, made.text
        assert made.json()["data"]["max_attempts"] == 7


@pytest.mark.parametrize(
    "destination",
    [
        {"kind": "webhook", "url": "http://127.0.0.1:6379/"},  # the server's own services
        {"kind": "webhook", "url": "http://169.254.169.254/latest/meta-data/"},  # cloud metadata
        {"kind": "webhook", "url": "http://10.1.2.3/hook"},  # the private network
        {"kind": "webhook", "url": "http://[::ffff:127.0.0.1]/"},  # loopback dressed as IPv6
        {"kind": "webhook", "url": "http://localhost:8080/"},  # a name: its addresses are checked
        {"kind": "otlp", "url": "http://0.0.0.0:4318"},
        {"kind": "otlp", "url": "http://[fd00:ec2::254]/"},
        {"kind": "syslog", "address": "tcp://[::1]:22"},
        {"kind": "syslog", "address": "tls://192.168.1.1:6514"},
        {"kind": "syslog", "address": "tcp://224.0.0.1:514"},
    ],
)
def test_by_default_streams_cannot_point_at_the_servers_network(
    server: LiveServer, destination: dict[str, str]
) -> None:
    with server.client(server.mint("sec-ssrf", "admin")) as c:
        refused = c.post("/v1/streams", json={"name": "in", **destination})
        assert refused.status_code == 422, refused.text
        detail = refused.json()["detail"]
        assert "AUDITBIRD_STREAM_HOSTS" in detail and "not a public address" in detail
        assert c.get("/v1/streams").json()["data"] == []


def test_otlp_headers_cannot_replace_the_ones_that_frame_the_request(server: LiveServer) -> None:
    with server.client(server.mint("sec-hdr", "admin")) as c:
        for name in ("Host", "content-type", "Content-Length", "Transfer-Encoding", "Connection"):
            body = {"name": "o", "kind": "otlp", "url": "https://otel.example.com", "headers": {name: "x"}}
            refused = c.post("/v1/streams", json=body)
            assert refused.status_code == 422, name
            assert "set by the exporter itself" in refused.json()["detail"]
        assert c.get("/v1/streams").json()["data"] == []


def test_each_connection_is_checked_again_so_a_replay_cannot_reach_loopback(
    server: LiveServer, receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stream the API accepted for a name that later resolves to loopback (or accepted while
    # the operator allowed it): the runner and a replay refuse to connect, the receiver gets nothing.
    admin, writer = server.mint("sec-replay", "admin"), server.mint("sec-replay", "write")
    store_url = f"sqlite:///{server.db_path}"
    target = StreamTarget.webhook(receiver.url)
    target.options["restricted"] = True  # as the API marks it
    create_stream(store_url, "sec-replay", "hook", target, max_attempts=1)
    with server.client(writer) as c:
        c.post("/v1/events", json=[{"id": "m:1", "action": "monitor.down"}]).raise_for_status()
    monkeypatch.delenv("AUDITBIRD_STREAM_HOSTS", raising=False)
    runner = StreamRunner(store_url, workspace="sec-replay", backoff=Backoff(0.001, 0.01))
    try:
        runner.run()
    finally:
        runner.close()
    assert receiver.events() == []
    with server.client(admin) as c:
        status = c.get("/v1/streams/hook").json()["data"]
        assert status["dead_letters"] == 1 and "AUDITBIRD_STREAM_HOSTS" in status["last_error"]
        replayed = c.post("/v1/streams/hook/dead-letters/replay")
        assert replayed.status_code == 502
        assert replayed.json()["replayed"] == 0 and "AUDITBIRD_STREAM_HOSTS" in replayed.json()["error"]
    assert receiver.events() == []
    # The operator allows loopback: the same runner code delivers.
    monkeypatch.setenv("AUDITBIRD_STREAM_HOSTS", "127.0.0.0/8")
    with StreamRegistry.for_store(store_url) as registry:
        assert replay_dead_letters(registry, registry.get("sec-replay", "hook"), store_url=store_url) == (
            1,
            None,
        )
    assert len(receiver.events()) == 1


def test_the_policy_follows_pythons_address_tables_and_the_operators_list() -> None:
    default = EgressPolicy.from_setting("")
    for public in ("1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"):
        assert default.address_allowed(ipaddress.ip_address(public)), public
    for inner in (
        "127.0.0.2",
        "100.64.0.1",
        "172.16.0.1",
        "fe80::1",
        "2002:7f00:1::",
        "64:ff9b::a00:1",
        "::",
    ):
        assert not default.address_allowed(ipaddress.ip_address(inner)), inner
    listed = EgressPolicy.from_setting("siem.internal, 10.20.0.0/16")
    assert listed.address_allowed(ipaddress.ip_address("10.20.3.4"))
    assert not listed.address_allowed(ipaddress.ip_address("10.21.0.1"))
    listed.check_name("siem.internal")
    listed.check_name("10.20.0.9")  # a listed network's address needs no name
    with pytest.raises(EgressRefused, match="AUDITBIRD_STREAM_HOSTS=siem.internal,10.20.0.0/16"):
        listed.check_name("siem.internal.attacker.net")


def test_the_recorded_change_names_only_the_destinations_scheme_and_host(server: LiveServer) -> None:
    # Slack-style webhooks carry their token in the path: a read key must not learn it.
    url = "https://hooks.example.com/services/T0/B0/SeCrEtToKeN?sig=qs#frag"
    with server.client(server.mint("sec-rec", "admin")) as c:
        assert c.post("/v1/streams", json={"name": "slack", "kind": "webhook", "url": url}).status_code == 201
        body = {"name": "sys", "kind": "syslog", "address": "tls://logs.example.com:6514"}
        assert c.post("/v1/streams", json=body).status_code == 201
    with server.client(server.mint("sec-rec", "read")) as c:
        events = c.get("/v1/events", params={"action": "audit_log.stream_added"}).json()["data"]
    assert len(events) == 2
    assert "SeCrEtToKeN" not in str(events) and "services" not in str(events)
    by_stream = {e["metadata"]["stream"]: e["metadata"] for e in events}
    assert by_stream["slack"]["destination"] == "https://hooks.example.com"
    assert by_stream["sys"]["destination"] == "tls://logs.example.com:6514"
