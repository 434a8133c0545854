"""`auditbird mcp --http`: streamable HTTP, each request scoped by its own bearer key,
driven by the MCP SDK's own client."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from auditbird import AuditLog
from auditbird.service.keys import KeyStore, keys_path_for

from .live_server import EXE, free_port, stop, wait_until_up

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[dict[str, Any]]:
    store = f"sqlite:///{tmp_path / 'audit.db'}"
    for workspace in ("acme", "other"):
        with AuditLog(store, workspace=workspace) as log:
            log.publish_audit_log({"id": "monitor:1", "action": f"monitor.{workspace}"})
    keys = KeyStore(keys_path_for(store))
    tokens = {ws: keys.create(workspace=ws, scope="read").secret for ws in ("acme", "other")}
    tokens["write"] = keys.create(workspace="acme", scope="write").secret
    keys.close()
    port = free_port()
    proc = subprocess.Popen(
        [EXE, "--store", store, "mcp", "--http", "--port", str(port)],
        cwd=tmp_path,
        stdout=(tmp_path / "mcp.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        wait_until_up(url, proc)
        yield {"url": url, "tokens": tokens, "store": store}
    finally:
        stop(proc)


def client(url: str, token: str) -> Client:
    http = httpx2.AsyncClient(headers={"authorization": f"Bearer {token}"}, timeout=30)
    return Client(streamable_http_client(url, http_client=http))


async def test_each_http_request_sees_only_its_keys_workspace(server: dict[str, Any]) -> None:
    for workspace in ("acme", "other"):
        async with client(server["url"], server["tokens"][workspace]) as c:
            result = await c.call_tool("search_events", {})
            assert not result.is_error, result.content
            events = json.loads(result.content[0].text)["events"]
            assert [(e["workspace"], e["action"]) for e in events] == [(workspace, f"monitor.{workspace}")]
    for workspace in ("acme", "other"):
        with AuditLog(server["store"], workspace=workspace) as log:
            assert len(log.list(action="audit_log.viewed").events) == 1


def test_http_without_a_read_key_is_refused(server: dict[str, Any]) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    headers = {"accept": "application/json, text/event-stream"}
    assert httpx.post(server["url"], json=body, headers=headers).status_code == 401
    for token in ("ab_nope_nope", server["tokens"]["write"]):
        bearer = {**headers, "authorization": f"Bearer {token}"}
        assert httpx.post(server["url"], json=body, headers=bearer).status_code == 401


async def test_a_viewer_link_over_http_reads_its_workspace_and_an_expired_one_is_refused(
    server: dict[str, Any],
) -> None:
    from auditbird.service.viewer_links import Grant, ViewerLinks

    links = ViewerLinks(keys_path_for(server["store"]))
    live = links.sign(Grant("other", 4_102_444_800_000))
    expired = links.sign(Grant("other", 1_000))
    links.close()
    async with client(server["url"], live) as c:
        result = await c.call_tool("search_events", {})
        assert not result.is_error, result.content
        events = json.loads(result.content[0].text)["events"]
        assert [(e["workspace"], e["action"]) for e in events] == [("other", "monitor.other")]
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    headers = {"accept": "application/json, text/event-stream", "authorization": f"Bearer {expired}"}
    assert httpx.post(server["url"], json=body, headers=headers).status_code == 401
