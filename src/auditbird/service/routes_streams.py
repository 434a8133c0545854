"""``/v1/streams``: a workspace's log streams, for its admin keys (docs/streams.md).

Every route needs an ``admin`` key and works in the key's workspace only: a stream of another
workspace answers 404 exactly like a stream that does not exist, so nothing about another
workspace's streams is observable. Handlers call :mod:`auditbird.streams` (the functions the
``auditbird streams`` CLI calls), off the event loop; delivery itself is ``auditbird streams
run``'s, which picks up what is added, paused or changed here within seconds.

Every change made here is itself an event of the workspace, written after the change:
``audit_log.stream_added``, ``_removed``, ``_paused``, ``_resumed``, ``_secret_rotated`` and
``_dead_letters_replayed``, with the key as actor and the stream as target (never a secret), so
a webhook added to carry the workspace's events elsewhere is on the record. (Changes made with
the CLI are the operator's, on the server's files, and are not recorded.)

Webhook, syslog and OTLP streams can be added here; NDJSON streams write files on the server's
disk, so only its operator adds them, with the CLI.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..reserved import system_events
from ..row import row_to_json
from ..stores.sqlite import SQLiteStore
from ..streams import (
    StreamExists,
    StreamFilter,
    StreamRegistry,
    StreamTarget,
    create_stream,
    replay_dead_letters,
    stream_statuses,
    streams_path_for,
)
from .auth import require
from .keys import ApiKey
from .problems import ProblemError, problem_response
from .schemas import ProblemDetail
from .state import ServiceState
from .stream_requests import SecretIn, StreamIn, allowed_hosts
from .stream_requests import target as stream_target

__all__ = ["router", "install", "AdminKey", "MAX_BODY_BYTES"]

# FastAPI reads and parses a JSON body before any dependency runs, the admin-key check
# included: without a bound, anyone could make the server hold and parse a huge body.
MAX_BODY_BYTES = 64 * 1024

T = TypeVar("T")

router = APIRouter(prefix="/v1/streams", tags=["streams"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ProblemDetail, "content": {"application/problem+json": {}}, "description": text}
    for code, text in (
        (401, "No or bad API key"),
        (403, "The key is not an admin key"),
        (404, "No stream of that name in the key's workspace"),
        (501, "The store is not SQLite: streams read a SQLite store's commit positions"),
    )
}


async def _admin_key(key: Annotated[ApiKey, Depends(require("any"))]) -> ApiKey:
    if key.scope != "admin":
        raise ProblemError(
            403,
            f"this key has scope {key.scope!r}; log streams need an 'admin' key of the workspace "
            "(auditbird keys create --scope admin)",
        )
    return key


AdminKey = Annotated[ApiKey, Depends(_admin_key)]
_Name = Annotated[str, PathParam(min_length=1, max_length=64, description="The stream's name")]


def install(app: FastAPI, store_url: str, backend: Any = None) -> None:
    """Add the routes to ``app`` and the streams' figures to its ``/metrics``; ``store_url``
    is '' when the app was given a store object (``backend``)."""
    if not store_url and isinstance(backend, SQLiteStore):
        store_url = f"sqlite:///{backend.path}"  # streams live beside its file
    app.state.streams_store_url = store_url
    app.state.stream_hosts = allowed_hosts(os.environ.get("AUDITBIRD_STREAM_HOSTS", ""))
    app.add_middleware(_BodyLimit, prefix=router.prefix, max_bytes=MAX_BODY_BYTES)
    app.include_router(router)
    state: ServiceState = app.state.auditbird
    if _streams_file(store_url) is not None:
        state.metrics.watch_streams(lambda: _statuses_if_any(store_url, None))


class _BodyLimit:
    """Answers 413 to a ``/v1/streams`` body over ``max_bytes`` before the route reads it (and
    so before the key is checked); a body within it is read here and handed on unchanged."""

    def __init__(self, app: ASGIApp, *, prefix: str, max_bytes: int) -> None:
        self.app, self.prefix, self.max_bytes = app, prefix, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path != self.prefix and not path.startswith(self.prefix + "/"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length", b"0")
        too_big = not declared.isdigit() or int(declared) > self.max_bytes
        chunks: list[bytes] = []
        size = 0
        more = not too_big
        while more:  # chunked bodies have no length: count what arrives
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, receive, send)  # a disconnect: let the app see it
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                too_big = True
                break
            chunks.append(chunk)
            more = message.get("more_body", False)
        if too_big:
            answer = problem_response(
                413,
                f"a /v1/streams request body may be at most {self.max_bytes // 1024} KiB; "
                "send the stream's settings only",
            )
            await answer(scope, receive, send)
            return
        body, sent = b"".join(chunks), False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _streams_file(store_url: str) -> Path | None:
    try:
        return streams_path_for(store_url)
    except ValueError:
        return None


def _statuses_if_any(store_url: str, workspace: str | None) -> list[Any]:
    # No streams file yet: no stream, and nothing created on disk for a read.
    path = _streams_file(store_url)
    if path is None or not path.exists():
        return []
    # Bounded per stream and in all: a page of 100 streams, or a /metrics refresh over every
    # workspace's, reads at most ~10,000 committed rows.
    return stream_statuses(store_url, workspace, scan_limit=1_000, scan_budget=10_000)


def _store_url(request: Request) -> str:
    url: str = request.app.state.streams_store_url
    if _streams_file(url) is None:
        raise ProblemError(
            501,
            "log streams need a SQLite store (they read its commit positions); "
            "run the service over the SQLite file events are written to",
        )
    return url


async def _call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn`` on a worker thread (SQLite, and a replay's HTTP), with the library's errors as problems."""
    try:
        return await run_in_threadpool(fn, *args, **kwargs)
    except StreamExists as exc:
        raise ProblemError(409, str(exc)) from exc
    except KeyError as exc:
        raise ProblemError(404, str(exc.args[0])) from exc
    except ValueError as exc:
        raise ProblemError(422, str(exc)) from exc


def _status(url: str, workspace: str, name: str) -> dict[str, Any]:
    found = _statuses_if_any(url, workspace)
    for status in found:
        if status.stream.name == name:
            return status.to_dict()
    raise KeyError(f"this workspace has no stream named {name!r}; list them with GET /v1/streams")


async def _record(request: Request, key: ApiKey, change: str, name: str, **details: Any) -> None:
    state: ServiceState = request.app.state.auditbird
    # Not strict: these actions are the service's own and need no registered schema.
    with system_events():  # audit_log.* is reserved to auditbird's own records
        await state.log(key.workspace, strict=False).publish_audit_log(
            {
                "id": f"log_stream:{name}",
                "action": f"audit_log.stream_{change}",
                "actor": {"id": key.key_id, "name": key.name or f"api key {key.key_id}", "type": "api_key"},
                "targets": [{"id": name, "type": "log_stream"}],
                "metadata": {"stream": name, **details},
            }
        )


def _destination(target: StreamTarget) -> str:
    """Where a stream delivers, as the recorded event says it: scheme and host only. Read keys
    see the event, and a webhook URL's path may be its credential (Slack's, Discord's)."""
    o = target.options
    if target.kind == "syslog":
        return f"{'tls' if o['tls'] else 'tcp'}://{o['host']}:{o['port']}"
    parts = urlsplit(o["url"])
    host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def _registry(url: str) -> StreamRegistry:
    return StreamRegistry.for_store(url)


@router.get("", summary="The workspace's streams: status, lag, failures, dead letters", responses=_ERRORS)
async def list_streams(request: Request, key: AdminKey) -> dict[str, Any]:
    url = _store_url(request)
    statuses = await _call(_statuses_if_any, url, key.workspace)
    return {"data": [s.to_dict() for s in statuses]}


@router.post(
    "",
    status_code=201,
    summary="Add a webhook or syslog stream (a webhook's secret is in this answer only)",
    responses={**_ERRORS, 409: _ERRORS[404] | {"description": "A stream of that name exists"}},
)
async def add_stream(request: Request, key: AdminKey, body: StreamIn) -> dict[str, Any]:
    url = _store_url(request)

    def add() -> tuple[dict[str, Any], str]:
        target = stream_target(body, request.app.state.stream_hosts)
        f = body.filter
        rule = StreamFilter(
            actions=tuple(f.actions),
            target_type=f.target_type,
            target_id=f.target_id,
            actor_in=tuple(f.actor_in),
            actor_not_in=tuple(f.actor_not_in),
        )
        create_stream(
            url,
            key.workspace,
            body.name,
            target,
            filter=rule,
            max_attempts=body.max_attempts,
            from_now=body.from_now,
            origin="api",  # restricted at every connection (streams/egress.py)
        )
        out = {"data": _status(url, key.workspace, body.name)}
        if target.kind == "webhook" and body.secret is None:
            out["secret"] = target.options["secret"]  # made here: shown once, never listed
        return out, _destination(target)

    out, destination = await _call(add)
    shown = out["data"]
    await _record(
        request, key, "added", body.name, kind=shown["kind"], destination=destination, filter=shown["filter"]
    )
    return out


@router.get("/{name}", summary="One stream's status", responses=_ERRORS)
async def get_stream(request: Request, key: AdminKey, name: _Name) -> dict[str, Any]:
    return {"data": await _call(_status, _store_url(request), key.workspace, name)}


@router.delete("/{name}", status_code=204, summary="Remove a stream and its dead letters", responses=_ERRORS)
async def remove_stream(request: Request, key: AdminKey, name: _Name) -> Response:
    url = _store_url(request)

    def remove() -> None:
        with _registry(url) as registry:
            registry.remove(key.workspace, name)

    await _call(remove)
    await _record(request, key, "removed", name)
    return Response(status_code=204)


async def _set_paused(request: Request, key: ApiKey, name: str, paused: bool) -> dict[str, Any]:
    url = _store_url(request)

    def change() -> dict[str, Any]:
        with _registry(url) as registry:
            registry.set_paused(key.workspace, name, paused)
        return _status(url, key.workspace, name)

    status = await _call(change)
    await _record(request, key, "paused" if paused else "resumed", name)
    return {"data": status}


@router.post("/{name}/pause", summary="Pause a stream (its position is kept)", responses=_ERRORS)
async def pause_stream(request: Request, key: AdminKey, name: _Name) -> dict[str, Any]:
    return await _set_paused(request, key, name, True)


@router.post("/{name}/resume", summary="Resume a stream from its position", responses=_ERRORS)
async def resume_stream(request: Request, key: AdminKey, name: _Name) -> dict[str, Any]:
    return await _set_paused(request, key, name, False)


@router.post(
    "/{name}/rotate-secret",
    summary="A new webhook secret (in this answer only); the old one signs beside it for grace_hours",
    responses=_ERRORS,
)
async def rotate_secret(
    request: Request, key: AdminKey, name: _Name, body: SecretIn | None = None
) -> dict[str, Any]:
    url = _store_url(request)
    grace_ms = int((body or SecretIn()).grace_hours * 3_600_000)

    def rotate() -> str:
        with _registry(url) as registry:
            return registry.rotate_secret(key.workspace, name, grace_ms=grace_ms)

    fresh = await _call(rotate)
    await _record(request, key, "secret_rotated", name, grace_hours=grace_ms / 3_600_000)
    return {"secret": fresh, "grace_hours": grace_ms / 3_600_000}


@router.get("/{name}/dead-letters", summary="A stream's dead letters, oldest first", responses=_ERRORS)
async def dead_letters(
    request: Request,
    key: AdminKey,
    name: _Name,
    limit: Annotated[int, Query(ge=1, le=1_000)] = 100,
    after: Annotated[int, Query(ge=0, le=2**62, description="next_after of the previous page")] = 0,
) -> dict[str, Any]:
    url = _store_url(request)

    def read() -> dict[str, Any]:
        with _registry(url) as registry:
            stream = registry.get(key.workspace, name)
            letters = registry.dead_letters(stream.id, limit + 1, after_id=after)
        page = letters[:limit]
        return {
            "data": [
                {
                    "id": d.id,
                    "uid": d.row.uid,
                    "error": d.error,
                    "attempts": d.attempts,
                    "created_at": d.created_at,
                    "event": row_to_json(d.row),
                }
                for d in page
            ],
            "next_after": page[-1].id if len(letters) > limit else None,
        }

    return await _call(read)


@router.post(
    "/{name}/dead-letters/replay",
    summary="Deliver the dead letters again, oldest first; stops at the first refusal",
    responses=_ERRORS,
)
async def replay(
    request: Request, key: AdminKey, name: _Name, limit: Annotated[int, Query(ge=1, le=1_000)] = 100
) -> JSONResponse:
    url = _store_url(request)

    def run() -> tuple[int, str | None, int]:
        with _registry(url) as registry:
            stream = registry.get(key.workspace, name)
            replayed, error = replay_dead_letters(registry, stream, limit=limit, store_url=url)
            left = registry.get(key.workspace, name).dead_letters
        return replayed, error, left

    replayed, error, left = await _call(run)
    await _record(request, key, "dead_letters_replayed", name, replayed=replayed, remaining=left)
    # 200 when every one asked for was delivered; 502 when the receiver refused one again.
    return JSONResponse(
        {"replayed": replayed, "remaining": left, "error": error}, status_code=502 if error else 200
    )
