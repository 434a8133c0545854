"""`auditbird mcp` over stdio, driven by the MCP SDK's own client: read-only, scoped by key."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters

from auditbird import AuditLog
from auditbird.service.keys import KeyStore, keys_path_for

from .live_server import EXE

pytestmark = pytest.mark.anyio

PROJECTION = """
from auditbird.projections import Projection, on

class MonitorView(Projection):
    name: str | None = None
    downs: int = 0

    @on("monitor.down")
    def _down(self, event):
        self.downs += 1

    @on("monitor.created", "monitor.updated")
    def _changed(self, event):
        self.name = event.to_dict()["metadata"]["after"]["name"]
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Any]:
    store = f"sqlite:///{tmp_path / 'audit.db'}"
    (tmp_path / "mcp_views.py").write_text(textwrap.dedent(PROJECTION))
    with AuditLog(store, workspace="acme") as log:
        created = log.publish_change("monitor.created", "monitor:1", after={"name": "api"}, timestamp=1_000)
        log.publish_audit_log({"id": "monitor:1", "action": "monitor.down", "timestamp": 2_000})
        updated = log.publish_change(
            "monitor.updated", "monitor:1", before={"name": "api"}, after={"name": "api-v2"}, timestamp=3_000
        )
        log.publish_audit_log({"id": "monitor:1", "action": "monitor.down", "timestamp": 4_000})
    with AuditLog(store, workspace="other") as log:
        log.publish_audit_log({"id": "monitor:1", "action": "monitor.secret", "timestamp": 2_500})
    keys = KeyStore(keys_path_for(store))
    read = keys.create(workspace="acme", scope="read", name="agent")
    write = keys.create(workspace="acme", scope="write")
    keys.close()
    return {"store": store, "dir": tmp_path, "key": read, "write_key": write, "uids": (created, updated)}


def params(world: dict[str, Any], token: str) -> StdioServerParameters:
    env = {
        **os.environ,
        "AUDITBIRD_API_KEY": token,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(world["dir"]), os.environ.get("PYTHONPATH")])),
    }
    return StdioServerParameters(
        command=EXE,
        args=["--store", world["store"], "mcp", "--projection", "mcp_views:MonitorView"],
        env=env,
        cwd=str(world["dir"]),
    )


def payload(result: Any) -> Any:
    assert not result.is_error, result.content
    return json.loads(result.content[0].text)


def error_text(result: Any) -> str:
    assert result.is_error
    return " ".join(c.text for c in result.content)


async def test_mcp_search_sees_only_its_keys_workspace_and_every_call_is_audited(
    world: dict[str, Any],
) -> None:
    async with Client(params(world, world["key"].secret)) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        # Nothing writes.
        assert tools == {"search_events", "stream_history", "project", "explain_changes", "verify_event"}
        everything = payload(await client.call_tool("search_events", {}))
        assert [e["action"] for e in everything["events"]] == [
            "monitor.down",
            "monitor.updated",
            "monitor.down",
            "monitor.created",
        ]
        assert {e["workspace"] for e in everything["events"]} == {"acme"}
        # A workspace argument is not a way out: the tool has none, and the answer stays in acme.
        sneaky = await client.call_tool("search_events", {"workspace": "other"})
        if not sneaky.is_error:
            assert {e["workspace"] for e in payload(sneaky)["events"]} == {"acme"}
        filtered = payload(
            await client.call_tool("search_events", {"action": ["monitor.down"], "since": 3_000, "limit": 5})
        )
        assert [e["timestamp"] for e in filtered["events"]] == [4_000]
        paged = payload(await client.call_tool("search_events", {"limit": 3}))
        rest = payload(await client.call_tool("search_events", {"limit": 3, "cursor": paged["next_cursor"]}))
        assert len(paged["events"]) == 3 and [e["action"] for e in rest["events"]] == ["monitor.created"]
    with AuditLog(world["store"], workspace="acme") as log:
        viewed = log.list(action="audit_log.viewed", limit=100).events
        other = log.list(workspace="other", limit=100).events
    assert len(viewed) == 5  # one per call
    assert {e.actor.id for e in viewed} == {world["key"].key.key_id}
    assert {e.metadata["endpoint"] for e in viewed} == {"mcp:search_events"}  # type: ignore[index]
    assert [e.action for e in other] == ["monitor.secret"]  # nothing written to another workspace


async def test_mcp_history_projection_and_changes_as_of_a_time(world: dict[str, Any]) -> None:
    created, updated = world["uids"]
    async with Client(params(world, world["key"].secret)) as client:
        history = payload(await client.call_tool("stream_history", {"event_id": "monitor:1"}))
        assert [e["timestamp"] for e in history["events"]] == [1_000, 2_000, 3_000, 4_000]
        now = payload(
            await client.call_tool("project", {"projection": "MonitorView", "event_id": "monitor:1"})
        )
        assert now["state"] == {"name": "api-v2", "downs": 2} and now["revision"] == 4
        then = payload(
            await client.call_tool(
                "project", {"projection": "MonitorView", "event_id": "monitor:1", "as_of": 2_500}
            )
        )
        assert then["state"] == {"name": "api", "downs": 1}
        changes = payload(
            await client.call_tool("explain_changes", {"event_id": "monitor:1", "since": 2_000})
        )
        assert [c["uid"] for c in changes["changes"]] == [updated.uid]
        assert (changes["before"], changes["after"]) == ({"name": "api"}, {"name": "api-v2"})
        assert changes["changes"][0]["changed"] == ["name"]
        everything = payload(await client.call_tool("explain_changes", {"event_id": "monitor:1"}))
        assert [c["uid"] for c in everything["changes"]] == [created.uid, updated.uid]
        assert everything["before"] is None


async def test_mcp_bad_arguments_give_a_clear_tool_error(world: dict[str, Any]) -> None:
    async with Client(params(world, world["key"].secret)) as client:
        assert "limit" in error_text(await client.call_tool("search_events", {"limit": 0}))
        assert "since" in error_text(await client.call_tool("search_events", {"since": "last tuesday"}))
        unknown = error_text(
            await client.call_tool("project", {"projection": "Nope", "event_id": "monitor:1"})
        )
        assert "unknown projection 'Nope'" in unknown and "MonitorView" in unknown
        assert "event_id" in error_text(await client.call_tool("stream_history", {}))
        assert error_text(await client.call_tool("publish_audit_log", {"id": "x", "action": "a.b"}))
    with AuditLog(world["store"], workspace="acme") as log:
        assert [e.action for e in log.list(limit=100, action=["monitor.down", "a.b"]).events] == [
            "monitor.down"
        ] * 2


def run_cli(world: dict[str, Any], token: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AUDITBIRD_API_KEY": token}
    return subprocess.run(
        [EXE, "--store", world["store"], "mcp"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_mcp_refuses_an_unknown_or_write_only_key(world: dict[str, Any]) -> None:
    bad = run_cli(world, "ab_nope_nope")
    assert bad.returncode == 2 and "unknown or revoked" in bad.stderr
    write = run_cli(world, world["write_key"].secret)
    assert write.returncode == 2 and "scope is 'write'" in write.stderr
    missing = run_cli(world, "")
    assert missing.returncode == 2 and "AUDITBIRD_API_KEY" in missing.stderr


async def test_mcp_a_key_revoked_during_the_session_stops_working(world: dict[str, Any]) -> None:
    async with Client(params(world, world["key"].secret)) as client:
        assert payload(await client.call_tool("search_events", {"limit": 1}))["events"]
        keys = KeyStore(keys_path_for(world["store"]))
        assert keys.revoke(world["key"].key.key_id)
        keys.close()
        for _ in range(100):  # the key store may reuse a verified key for up to its cache time (1 s)
            result = await client.call_tool("search_events", {"limit": 1})
            if result.is_error:
                break
            await anyio.sleep(0.05)
        assert "revoked" in error_text(result)


async def test_mcp_verify_event_checks_the_proof_and_finds_a_changed_row(world: dict[str, Any]) -> None:
    created, updated = world["uids"]
    with AuditLog(world["store"], workspace="other") as log:
        theirs = log.list(limit=1).events[0].uid
    async with Client(params(world, world["key"].secret)) as client:
        good = payload(await client.call_tool("verify_event", {"uid": created.uid}))
        assert (good["verified"], good["included"], good["intact"], good["problem"]) == (
            True,
            True,
            True,
            None,
        )
        assert good["proof"]["leaf_index"] == 0 and good["proof"]["workspace"] == "acme"
        # Someone with the file changes a stored event behind the library's back.
        conn = sqlite3.connect(world["store"][len("sqlite:///") :])
        with conn:
            conn.execute(
                'UPDATE audit_log SET metadata = \'{"after":{"name":"evil"}}\' WHERE uid = ?', (updated.uid,)
            )
        conn.close()
        bad = payload(await client.call_tool("verify_event", {"uid": updated.uid}))
        assert (bad["verified"], bad["included"], bad["intact"]) == (False, True, False)
        assert "changed after it was written" in bad["problem"]
        # Another workspace's event is as unknown as a uid nobody wrote.
        other = error_text(await client.call_tool("verify_event", {"uid": theirs}))
        nobody = error_text(await client.call_tool("verify_event", {"uid": "nope"}))
        assert "no event" in other and other.replace(theirs, "nope") == nobody
        assert "uid" in error_text(await client.call_tool("verify_event", {"uid": ""}))


async def test_mcp_with_a_viewer_link_keeps_to_its_workspace_and_actor(world: dict[str, Any]) -> None:
    from auditbird.service.viewer_links import Grant, ViewerLinks

    with AuditLog(world["store"], workspace="acme") as log:
        alice = [
            log.publish_audit_log({"id": "monitor:2", "action": "monitor.down", "actor": {"id": "alice"}})
            for _ in range(2)
        ]
        bob = log.publish_audit_log({"id": "monitor:2", "action": "monitor.down", "actor": {"id": "bob"}})
    links = ViewerLinks(keys_path_for(world["store"]))
    far = 4_102_444_800_000  # 2100
    link = links.sign(Grant("acme", far, actor_id="alice"))
    expired = links.sign(Grant("acme", 1_000, actor_id="alice"))
    links.close()
    async with Client(params(world, link)) as client:
        found = payload(await client.call_tool("search_events", {}))
        assert [e["uid"] for e in found["events"]] == [e.uid for e in reversed(alice)]
        assert "actor_id" in error_text(await client.call_tool("search_events", {"actor_id": "bob"}))
        history = payload(await client.call_tool("stream_history", {"event_id": "monitor:2"}))
        assert [e["uid"] for e in history["events"]] == [e.uid for e in alice]
        projected = error_text(
            await client.call_tool("project", {"projection": "MonitorView", "event_id": "monitor:2"})
        )
        assert "viewer link" in projected
        assert payload(await client.call_tool("verify_event", {"uid": alice[0].uid}))["verified"] is True
        hidden = error_text(await client.call_tool("verify_event", {"uid": bob.uid}))
        assert hidden == error_text(await client.call_tool("verify_event", {"uid": "nope"})).replace(
            "nope", bob.uid
        )
    with AuditLog(world["store"], workspace="acme") as log:
        viewed = log.list(action="audit_log.viewed", limit=100).events
    assert viewed and {e.actor.name for e in viewed} == {"viewer link"}
    stale = run_cli(world, expired)
    assert stale.returncode == 2 and "expired" in stale.stderr
