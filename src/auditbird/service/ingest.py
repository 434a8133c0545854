"""Request bodies -> event inputs: one JSON object, a JSON array, or NDJSON; sizes checked first."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from typing import Any

from fastapi import Request
from pydantic_core import from_json

from .._errors import Problem
from ..codec import dumps
from .limits import ServiceLimits
from .problems import MAX_LISTED_ERRORS, ProblemError

__all__ = ["read_body", "parse_events", "check_event_sizes", "derive_uids", "body_digest"]

NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl", "application/json-seq")


async def read_body(request: Request, limits: ServiceLimits) -> bytes:
    """The body, refused with 413 as soon as it is known to be over the limit (header or stream)."""
    limit = limits.max_request_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(f"the body is {int(declared):,} bytes; at most {limit:,} per request")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(f"the body is over {limit:,} bytes; send at most that per request")
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(detail: str, errors: list[Problem] | None = None) -> ProblemError:
    return ProblemError(413, detail, errors=errors, slug="payload-too-large")


def parse_events(body: bytes, content_type: str, max_events: int) -> tuple[list[Any], bool]:
    """``(items, single)``: ``single`` when the body was one JSON object (answered as one).
    More than ``max_events`` events is a 413 (validation time and memory grow with the count).

    Parsed by pydantic-core (``from_json``, in Rust: about twice as fast as ``json.loads``; bad
    UTF-8, lone surrogates and nesting deeper than 200 levels are refused here, as a 400)."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media in NDJSON_TYPES:
        lines = [line for line in body.split(b"\n") if line.strip()]
        _check_count(len(lines), max_events)  # before parsing: a line costs a dict or more
        items: list[Any] = []
        problems: list[Problem] = []
        bad = 0
        for i, line in enumerate(lines):
            try:
                items.append(from_json(line))
            except ValueError as exc:
                bad += 1
                if len(problems) < MAX_LISTED_ERRORS:
                    problems.append(Problem("", f"line {i + 1} is not JSON: {_reason(exc)}", len(items)))
        if problems:
            raise ProblemError(
                400, "the NDJSON body has lines that are not JSON", errors=problems, error_count=bad
            )
        if not items:
            raise _empty()
        return items, False
    try:
        data = from_json(body)
    except ValueError as exc:
        raise ProblemError(
            400,
            "the body is not JSON; send one event object, an array of events, "
            "or NDJSON with Content-Type: application/x-ndjson",
            errors=[Problem("body", _reason(exc))],
        ) from None
    if isinstance(data, dict):
        return [data], True
    if isinstance(data, list):
        if not data:
            raise _empty()
        _check_count(len(data), max_events)
        return data, False
    raise ProblemError(
        422,
        "the body must be an event (a JSON object) or a list of them",
        errors=[Problem("body", f"got a JSON {type(data).__name__}")],
    )


def _check_count(count: int, max_events: int) -> None:
    if count > max_events:
        raise _too_large(
            f"the body holds {count:,} events; send at most {max_events:,} per request",
            [Problem("body", f"{count:,} events; at most {max_events:,}: split the batch")],
        )


def _empty() -> ProblemError:
    return ProblemError(422, "the body holds no events", errors=[Problem("body", "at least one event")])


def _reason(exc: Exception) -> str:
    return str(exc)[:200]


def check_event_sizes(items: list[Any], body_size: int, limits: ServiceLimits) -> None:
    """413 naming each event over ``max_event_bytes`` (only measured when the body could hold one)."""
    if body_size <= limits.max_event_bytes:
        return
    over = []
    for i, item in enumerate(items):
        try:
            size = len(dumps(item).encode())
        except (ValueError, RecursionError):  # NaN and friends: validation names them
            continue
        if size > limits.max_event_bytes:
            over.append(Problem("", f"event of {size:,} bytes; at most {limits.max_event_bytes:,}", i))
    if over:
        raise _too_large("events over the per-event size limit; nothing was stored", over)


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def derive_uids(items: list[Any], workspace: str, idempotency_key: str, secret: bytes) -> list[Any]:
    """Give each event without a ``uid`` one derived from the Idempotency-Key and its position,
    so a retry stores nothing twice even if the first answer was never recorded.

    HMAC-SHA256 keyed by the server's secret (:mod:`.server_secret`) over the workspace, the key
    and the position: nobody without the secret can compute the uid of another tenant's request
    (to claim it first, or to probe for it)."""
    out = []
    for i, item in enumerate(items):
        if isinstance(item, dict) and "uid" not in item:
            message = f"{workspace}\x00{idempotency_key}\x00{i}".encode()
            digest = hmac.new(secret, message, hashlib.sha256).digest()
            item = {**item, "uid": str(uuid.UUID(bytes=digest[:16], version=4))}
        out.append(item)
    return out
