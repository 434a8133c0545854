"""``auditbird mcp``: read-only audit-log tools for agents, over MCP (the official SDK).

    AUDITBIRD_API_KEY=ab_... auditbird --store sqlite:///audit.db mcp --projection app.views:MonitorState

The server answers for one API key (or viewer link), resolved with the service's key store
beside the store exactly as the REST API does (:mod:`.mcp_access`): it sees only the key's
workspace, needs a read (or admin) scope, and keeps to a viewer link's actor/target
restriction. The credential is checked again on every call, so a revoked key or an expired
link stops working within the key store's cache time. Every tool only reads (a projection is
folded without saving a snapshot), and every call is itself recorded as an
``audit_log.viewed`` event in the key's workspace, with the key (or link) as actor, written
before the answer is returned (no unaudited read).

Tools: ``search_events`` (every filter of ``list``), ``stream_history``, ``project`` (a
registered projection, as of a time), ``explain_changes`` (the before/after of a subject's
change events between two times) and ``verify_event`` (an event's inclusion proof in the
workspace's Merkle tree, checked, and its stored bytes hashed again: docs/provable-history.md).
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import Field

from ._errors import AuditError
from .async_log import AsyncAuditLog
from .mcp_access import KeyVerifier, McpAccess, restricted_filters
from .projections import Projection
from .service.access import ACCESS_ACTIONS, read_page, record_access
from .service.auth import Credential
from .service.keys import ApiKey

__all__ = ["build_server", "load_projections", "resolve_key", "KeyVerifier"]

_MAX_HISTORY = 1_000
_Text = Annotated[str | None, Field(default=None, max_length=512)]
_Time = Annotated[
    str | int | None,
    Field(default=None, description="ms since epoch, ISO 8601, or a duration ago such as 15m, 2h, 7d"),
]


def resolve_key(store_url: str, token: str) -> tuple[McpAccess, Credential]:
    """The read key or viewer link ``token`` names, from the key file beside ``store_url``;
    ValueError saying why if it may not read."""
    access = McpAccess(store_url)
    try:
        return access, access.first(token)
    except ValueError:
        access.close()
        raise


def load_projections(specs: Sequence[str]) -> dict[str, type[Projection]]:
    """``module:Class`` specs (``name=module:Class`` to rename) as projections by name."""
    out: dict[str, type[Projection]] = {}
    for spec in specs:
        name, _, target = spec.rpartition("=")
        module_name, _, attr = target.partition(":")
        if not module_name or not attr:
            raise ValueError(f"--projection {spec!r}: use module:Class (or name=module:Class)")
        try:
            cls = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ValueError(
                f"--projection {spec!r}: cannot import it ({exc}); is it on PYTHONPATH?"
            ) from None
        if not (isinstance(cls, type) and issubclass(cls, Projection)):
            raise ValueError(f"--projection {spec!r} is not an auditbird Projection subclass")
        out[name or attr] = cls
    return out


def build_server(
    store_url: str,
    token: str | None,
    projections: dict[str, type[Projection]] | None = None,
    *,
    http_url: str | None = None,
) -> Any:
    """The MCP server (an ``mcp`` ``MCPServer``) over ``store_url``.

    On stdio it answers for ``token``'s workspace; over HTTP (``http_url``, the server's own
    base URL) each request carries its key as ``Authorization: Bearer ab_...`` and sees that
    key's workspace only."""
    from mcp.server.auth.middleware.auth_context import get_access_token
    from mcp.server.auth.settings import AuthSettings
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError

    if token is not None:
        access, first = resolve_key(store_url, token)
        scope = f"the audit log of workspace {first.workspace or 'default'!r}"
    else:
        access, scope = McpAccess(store_url), "the audit log of your API key's workspace"
    projections = dict(projections or {})
    logs: dict[str, AsyncAuditLog] = {}

    def log(key: ApiKey) -> AsyncAuditLog:
        # One log per workspace, opened lazily inside the server's event loop.
        if key.workspace not in logs:
            logs[key.workspace] = AsyncAuditLog(store_url, workspace=key.workspace)
        return logs[key.workspace]

    def caller() -> Credential:
        presented = token
        if presented is None:
            bearer = get_access_token()
            presented = bearer.token if bearer is not None else None
        current = access.resolve(presented)
        if current is None:
            raise ToolError(
                "the API key was revoked or lost its read scope (or the viewer link expired); "
                "ask an admin for a read key"
            )
        return current

    async def audited(k: ApiKey, tool: str, filters: dict[str, Any], **extra: Any) -> None:
        try:
            await record_access(log(k), k, "audit_log.viewed", f"mcp:{tool}", filters, **extra)
        except AuditError as exc:  # fail closed: no unaudited reads
            raise ToolError(f"the read could not be recorded, so it is refused: {exc}") from exc

    def bad(exc: Exception) -> ToolError:
        return ToolError(f"{exc}")

    auth: dict[str, Any] = {}
    if http_url is not None:
        auth = {
            "token_verifier": KeyVerifier(access),
            "auth": AuthSettings(issuer_url=http_url, resource_server_url=None),
        }
    server = MCPServer(
        name="auditbird",
        instructions=f"Read-only access to {scope}: who did what, when, to which resource.",
        **auth,
    )

    @server.tool()
    async def search_events(
        action: Annotated[
            list[str] | None, Field(default=None, max_length=50, description="any of these")
        ] = None,
        actor_id: _Text = None,
        target_type: _Text = None,
        target_id: _Text = None,
        event_id: Annotated[
            str | None, Field(default=None, max_length=512, description="the subject/stream")
        ] = None,
        text: _Text = None,
        since: _Time = None,
        until: _Time = None,
        limit: Annotated[int, Field(ge=1, le=1000)] = 50,
        cursor: Annotated[str | None, Field(default=None, max_length=512)] = None,
    ) -> dict[str, Any]:
        """Events of the workspace, newest first, with every filter of `auditbird query`;
        pass next_cursor back for the next page."""
        cred = caller()
        k = cred.key
        filters: dict[str, Any] = {
            k: v
            for k, v in {
                "action": action,
                "actor_id": actor_id,
                "target_type": target_type,
                "target_id": target_id,
                "event_id": event_id,
                "text": text,
                "since": since,
                "until": until,
            }.items()
            if v is not None
        }
        try:
            filters = restricted_filters(cred, filters)
            events, next_cursor = await read_page(log(k), filters, limit, cursor)
        except (ValueError, AuditError) as exc:
            raise bad(exc) from exc
        await audited(k, "search_events", {**filters, "cursor": cursor}, count=len(events))
        return {"events": [e.to_dict() for e in events], "next_cursor": next_cursor}

    @server.tool()
    async def stream_history(
        event_id: Annotated[
            str, Field(min_length=1, max_length=512, description="the subject, e.g. monitor:1")
        ],
        as_of: _Time = None,
        after_revision: Annotated[int | None, Field(default=None, ge=0)] = None,
        limit: Annotated[int, Field(ge=1, le=_MAX_HISTORY)] = 100,
    ) -> dict[str, Any]:
        """A subject's events oldest first (commit order), optionally as of a time."""
        cred = caller()
        k = cred.key
        events = []
        try:
            async for event in log(k).history(event_id, as_of=as_of, after_revision=after_revision):
                if event.action in ACCESS_ACTIONS or not cred.allows(event):
                    continue
                events.append(event.to_dict())
                if len(events) >= limit:
                    break
        except (ValueError, AuditError) as exc:
            raise bad(exc) from exc
        await audited(k, "stream_history", {"event_id": event_id, "as_of": as_of}, count=len(events))
        return {"events": events, "truncated": len(events) >= limit}

    @server.tool()
    async def project(
        projection: Annotated[str, Field(min_length=1, max_length=200)],
        event_id: Annotated[str, Field(min_length=1, max_length=512)],
        as_of: _Time = None,
    ) -> dict[str, Any]:
        """The state of a subject folded by a registered projection, now or as of a time."""
        cred = caller()
        k = cred.key
        if cred.restrictions():
            raise ToolError(
                "a projection folds every event of a subject, and this viewer link shows only some "
                "of them: use stream_history, or an API key with read scope"
            )
        cls = projections.get(projection)
        if cls is None:
            known = ", ".join(sorted(projections)) or "none (start the server with --projection module:Class)"
            raise ToolError(f"unknown projection {projection!r}; registered: {known}")
        try:
            state = await log(k).project(event_id, cls, as_of=as_of, snapshots=False)
        except (ValueError, AuditError) as exc:
            raise bad(exc) from exc
        await audited(k, "project", {"projection": projection, "event_id": event_id, "as_of": as_of})
        return {
            "projection": projection,
            "event_id": event_id,
            "revision": state.revision,
            "state": state.model_dump(mode="json"),
        }

    @server.tool()
    async def explain_changes(
        event_id: Annotated[str, Field(min_length=1, max_length=512)],
        since: _Time = None,
        until: _Time = None,
    ) -> dict[str, Any]:
        """What changed for a subject between two times: each change event's before/after and
        changed fields (events written with publish_change), oldest first."""
        cred = caller()
        k = cred.key
        changes = []
        try:
            async for event in log(k).history(event_id, as_of=until):
                if not cred.allows(event):
                    continue
                data = event.to_dict()
                meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else None
                if meta is None or not {"before", "after"} <= meta.keys():
                    continue
                if since is not None and event.timestamp < _ms(since):
                    continue
                changes.append(
                    {
                        "uid": event.uid,
                        "action": event.action,
                        "timestamp": event.timestamp,
                        "actor": data["actor"],
                        "changed": meta.get("changed", []),
                        "before": meta.get("before"),
                        "after": meta.get("after"),
                    }
                )
                if len(changes) >= _MAX_HISTORY:
                    break
        except (ValueError, AuditError) as exc:
            raise bad(exc) from exc
        await audited(
            k, "explain_changes", {"event_id": event_id, "since": since, "until": until}, count=len(changes)
        )
        return {
            "event_id": event_id,
            "before": changes[0]["before"] if changes else None,
            "after": changes[-1]["after"] if changes else None,
            "changes": changes,
        }

    @server.tool()
    async def verify_event(
        uid: Annotated[str, Field(min_length=1, max_length=128, description="the event's uid")],
        size: Annotated[
            int | None, Field(default=None, ge=1, le=2**62, description="the tree's size; default: now")
        ] = None,
    ) -> dict[str, Any]:
        """Whether an event is intact and part of the workspace's tamper-evident history: its
        inclusion proof in the Merkle tree (now, or at `size` leaves) checked against the tree's
        root, and its stored bytes hashed again and compared with the proof's leaf."""
        cred = caller()
        k = cred.key
        if cred.restrictions():
            # A link sees only some events: one it may not see is as unknown as no event at all.
            try:
                visible = cred.allows(await log(k).event(uid))
            except (LookupError, AuditError):
                visible = False
            if not visible:
                raise ToolError(f"no event {uid!r} that this viewer link may see: check the uid")
        try:
            answer = await asyncio.to_thread(_verify_event, store_url, k.workspace, uid, size)
        except (ValueError, LookupError, AuditError) as exc:
            raise bad(exc) from exc
        await audited(k, "verify_event", {"uid": uid, "size": size})
        return answer

    return server


def _verify_event(store_url: str, workspace: str, uid: str, size: int | None) -> dict[str, Any]:
    from .provable import ProofError, prove
    from .query import Query
    from .stores import open_store
    from .stores.merkle import leaf_data, leaf_hash

    store = open_store(store_url)
    try:
        proof = prove(store, uid, size=size, workspace=workspace)
        rows = store.query(Query(workspace=workspace, uid=uid, limit=1))
    finally:
        store.close()
    try:
        proof.verify()
        included, problem = True, None
    except ProofError as exc:
        included, problem = False, f"the inclusion proof does not lead to the tree's root: {exc}"
    intact = bool(rows) and leaf_hash(leaf_data(rows[0])) == proof.leaf_hash
    if not intact and problem is None:
        problem = (
            "the stored event no longer hashes to its leaf in the tree: it was changed after it was written"
        )
    return {
        "uid": uid,
        "verified": included and intact,
        "included": included,
        "intact": intact,
        "problem": problem,
        "proof": proof.to_json(),
    }


def _ms(value: str | int) -> int:
    from .query import parse_time

    return int(parse_time(value))
