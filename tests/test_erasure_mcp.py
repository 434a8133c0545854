"""`auditbird mcp` (over stdio, driven by the MCP SDK's own client) answers an erased subject's
fields as [erased]: its reads take the library's one decode path."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from auditbird import AuditLog
from auditbird.erasure import erase_subject
from auditbird.service.keys import KeyStore, keys_path_for

from .live_server import EXE

pytestmark = pytest.mark.anyio
ADA, BOB = "Ada Lovelace", "Bob Babbage"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_mcp_reads_erased_fields_as_erased(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'audit.db'}"
    with AuditLog(store, workspace="acme") as log:
        for actor_id, name in (("42", ADA), ("43", BOB)):
            log.publish_audit_log(
                {"id": "org:1", "action": "user.joined", "actor": {"id": actor_id, "name": name}}
            )
        erase_subject(log, "user:42")
    keys = KeyStore(keys_path_for(store))
    read = keys.create(workspace="acme", scope="read").secret
    keys.close()
    params = StdioServerParameters(
        command=EXE,
        args=["--store", store, "mcp"],
        env={**os.environ, "AUDITBIRD_API_KEY": read},
        cwd=str(tmp_path),
    )
    async with Client(params) as client:
        result = await client.call_tool("search_events", {"action": ["user.joined"]})
        assert not result.is_error, result.content
        text = result.content[0].text
        history = (await client.call_tool("stream_history", {"event_id": "org:1"})).content[0].text
    names = sorted(e["actor"]["name"] for e in json.loads(text)["events"])
    assert names == ["Bob Babbage", "[erased]"]
    assert ADA not in text and ADA not in history and BOB in history
