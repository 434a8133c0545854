"""The service's reads, shared by the API's routes and the viewer's: the list filters as query
parameters, a credential's workspace and restriction applied to them, and one page, one event
or an export read through the library and recorded (:mod:`.access`).

A route parses its parameters and its credential, then calls one of these; no route calls
another route's handler.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import Query
from fastapi.responses import Response, StreamingResponse
from pydantic_core import to_json

from .._errors import Problem
from ..event import Event
from ..export import csv_lines, ndjson_lines
from .access import ACCESS_ACTIONS, iter_pages, read_page, record_access
from .auth import Credential
from .keys import ApiKey
from .problems import ProblemError
from .state import ServiceState

__all__ = [
    "Filters",
    "MAX_PARAM_CHARS",
    "MAX_ACTIONS",
    "json_response",
    "check_workspace",
    "restricted",
    "list_filters",
    "hides_access",
    "list_page",
    "find_event",
    "export_response",
]

# Every query parameter has a cap: a read must cost what its answer costs, never what a
# hostile value makes a parser or a scan do (issue #10: one 60 KB `since` froze every tenant).
MAX_PARAM_CHARS = 256
MAX_ACTIONS = 100


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Compact UTF-8 JSON, as ``json.dumps(separators=(",", ":"), ensure_ascii=False)`` writes
    it, by pydantic-core's serializer (a few times faster)."""
    return Response(to_json(data), status_code=status, media_type="application/json", headers=headers)


def _text_param(description: str | None = None) -> Any:
    return Query(description=description, max_length=MAX_PARAM_CHARS)


class Filters:
    """The ``list`` filters as query parameters (``/v1/events``, ``/v1/export`` and the viewer's)."""

    def __init__(
        self,
        event_id: Annotated[
            str | None, _text_param("The stream's key (an event's `id`), e.g. `monitor:1`")
        ] = None,
        action: Annotated[
            list[str] | None,
            Query(description=f"Repeatable (up to {MAX_ACTIONS}): any of these actions"),
        ] = None,
        actor_id: Annotated[str | None, _text_param()] = None,
        target_type: Annotated[str | None, _text_param()] = None,
        target_id: Annotated[str | None, _text_param()] = None,
        since: Annotated[
            str | None, _text_param("Inclusive: ms since epoch, `15m`/`1h`/`7d` (ago), or ISO 8601")
        ] = None,
        until: Annotated[str | None, _text_param("Exclusive; same forms as `since`")] = None,
        text: Annotated[
            str | None,
            _text_param("Substring of the event id or the metadata (ASCII letters match in either case)"),
        ] = None,
        workspace: Annotated[
            str | None, _text_param("Optional; if given it must be the key's own workspace")
        ] = None,
    ) -> None:
        self.workspace = workspace
        self.values: dict[str, Any] = {
            "event_id": event_id,
            "action": action or None,
            "actor_id": actor_id,
            "target_type": target_type,
            "target_id": target_id,
            "since": since,
            "until": until,
            "text": text,
        }
        if action is not None and (
            len(action) > MAX_ACTIONS or any(len(a) > MAX_PARAM_CHARS for a in action)
        ):
            raise ProblemError(
                422,
                "invalid parameters",
                errors=[
                    Problem(
                        "query.action",
                        f"at most {MAX_ACTIONS} values of at most {MAX_PARAM_CHARS} characters each",
                    )
                ],
            )


def check_workspace(key_workspace: str, asked: str | None) -> None:
    """A key reads and writes its own workspace only: naming another is a 403."""
    if asked is not None and asked != key_workspace:
        raise ProblemError(
            403,
            f"this key is scoped to workspace {key_workspace!r}; it cannot read or write {asked!r}",
            errors=[Problem("workspace", "must be the key's workspace (or left out)")],
        )


def restricted(who: Credential, filters: Filters) -> Filters:
    """Apply a viewer link's restriction to the filters; asking for anything else is a 403."""
    if filters.workspace is not None and filters.workspace != who.workspace:
        raise ProblemError(
            403,
            f"this credential is scoped to workspace {who.workspace!r}; it cannot read {filters.workspace!r}",
            errors=[Problem("workspace", "must be the credential's workspace (or left out)")],
        )
    for name, value in who.restrictions().items():
        asked = filters.values.get(name)
        if asked is not None and asked != value:
            raise ProblemError(
                403,
                f"this viewer link shows only {name} {value!r}",
                errors=[Problem(name, f"must be {value!r} (the link's restriction) or left out")],
            )
        filters.values[name] = value
    return filters


def list_filters(filters: Filters) -> dict[str, Any]:
    """The filters ``list`` takes beside a time range of the caller's own (chart, live tail)."""
    return {k: v for k, v in filters.values.items() if k not in ("since", "until")}


def hides_access(filters: dict[str, Any]) -> bool:
    """Records of reads are left out unless asked for by name (see :mod:`.access`)."""
    return not any(a in ACCESS_ACTIONS for a in filters.get("action") or ())


async def list_page(
    state: ServiceState, key: ApiKey, filters: Filters, limit: int, cursor: str | None
) -> Response:
    """One page of ``GET /v1/events``, recorded as a read."""
    check_workspace(key.workspace, filters.workspace)
    log = state.log(key.workspace)
    events, next_cursor = await read_page(log, filters.values, limit, cursor)
    state.metrics.add("events_read", len(events), workspace=key.workspace)
    await record_access(
        state.log(key.workspace, strict=False),
        key,
        "audit_log.viewed",
        "/v1/events",
        {**filters.values, "cursor": cursor},
        count=len(events),
    )
    return json_response({"data": [e.to_dict() for e in events], "next_cursor": next_cursor})


async def find_event(state: ServiceState, who: Credential, uid: str, endpoint: str) -> Event | None:
    """The event ``uid`` of the credential's workspace (within its restriction), recorded as a
    read whether found or not."""
    event = await state.log(who.workspace).get(uid)
    if event is not None and not who.allows(event):
        event = None
    await record_access(
        state.log(who.workspace, strict=False),
        who.key,
        "audit_log.viewed",
        endpoint,
        {"uid": uid},
        count=0 if event is None else 1,
    )
    return event


async def export_response(
    state: ServiceState, key: ApiKey, filters: Filters, format: Literal["csv", "ndjson"]
) -> StreamingResponse:
    """``GET /v1/export``: every matching event streamed, a page at a time, recorded."""
    check_workspace(key.workspace, filters.workspace)
    log = state.log(key.workspace)
    pages = iter_pages(log, filters.values)
    # Pull the first page before answering: bad filters are a 422, not a broken stream.
    first = await anext(pages, None)
    await record_access(
        state.log(key.workspace, strict=False),
        key,
        "audit_log.exported",
        "/v1/export",
        filters.values,
        format=format,
    )

    async def body() -> AsyncIterator[str]:
        header = format == "csv"
        page = first
        while page is not None:
            lines = csv_lines(page, header=header) if format == "csv" else ndjson_lines(page)
            header = False
            yield "".join(lines)
            state.metrics.add("events_read", len(page), workspace=key.workspace)
            page = await anext(pages, None)
        if first is None and format == "csv":
            yield "".join(csv_lines([], header=True))

    media = "text/csv; charset=utf-8" if format == "csv" else "application/x-ndjson"
    filename = f"auditbird-{key.workspace or 'default'}.{format}"
    return StreamingResponse(
        body(), media_type=media, headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )
