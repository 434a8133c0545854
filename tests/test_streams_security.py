"""The admin API for log streams against what a hostile caller sends: bodies too big to read
before the key is checked, destinations inside the server's network, secrets in URLs."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from auditbird.service.routes_streams import MAX_BODY_BYTES

from .plugins.service import LiveServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, start_service: Callable[..., LiveServer]) -> LiveServer:
    return start_service(tmp_path_factory.mktemp("streams-sec"))


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
