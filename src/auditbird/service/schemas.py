"""Response shapes for the OpenAPI document. Events themselves are :class:`auditbird.Event`:
the library's model is the API's schema, never a second description of it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from ..event import Event

__all__ = ["EventPage", "EventBatch", "PublishCount", "ProblemDetail", "FieldProblem", "EVENT_BODY"]


class EventPage(BaseModel):
    """A page of events, newest first. Pass ``next_cursor`` back as ``cursor``; null: the end."""

    data: list[Event]
    next_cursor: str | None = None


class EventBatch(BaseModel):
    """The stored events of an array or NDJSON publish, in the order sent."""

    data: list[Event]
    count: int


class KeptEvent(BaseModel):
    index: int = Field(description="Position in the request")
    event: Event = Field(description="The event as stored (the first copy of its uid)")


class PublishCount(BaseModel):
    """The answer to a publish sent with ``Prefer: return=minimal``."""

    count: int
    kept: list[KeptEvent] | None = Field(
        None,
        description="Only when some events were not stored as sent (their uid was already stored "
        "in this workspace): each one's position and the stored copy",
    )


class FieldProblem(BaseModel):
    index: int | None = Field(None, description="Position in the batch (null for a single event)")
    loc: str = Field(description="Dotted path of the bad field, e.g. `metadata.statusCode`")
    msg: str


class ProblemDetail(BaseModel):
    """RFC 9457 ``application/problem+json``; ``errors`` lists every bad field."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[FieldProblem] | None = None


def _event_ref() -> dict[str, Any]:
    return {"$ref": "#/components/schemas/Event"}


# POST /v1/events reads its body itself (JSON object, array, or NDJSON) so that validation is
# the library's; this documents the same shapes from the Event model's schema.
EVENT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [_event_ref(), {"type": "array", "items": _event_ref(), "minItems": 1}],
                },
                "example": {
                    "id": "monitor:1",
                    "action": "monitor.down",
                    "targets": [{"id": "1", "type": "monitor"}],
                    "metadata": {"region": "gru", "statusCode": 400, "message": "timeout"},
                },
            },
            "application/x-ndjson": {"schema": {"type": "string", "description": "One event per line"}},
        },
    }
}
