"""Request bodies -> event inputs: one JSON object, a JSON array, or NDJSON; sizes checked first."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import uuid
from typing import Any

from fastapi import Request
from pydantic_core import from_json

from .._errors import Problem
from ..codec import dumps
from .event_time import refuse_future_timestamps
from .limits import ServiceLimits
from .problems import MAX_LISTED_ERRORS, ProblemError

__all__ = [
    "read_body",
    "parse_events",
    "check_event_sizes",
    "derive_uids",
    "body_digest",
    "prepare_items",
    "INLINE_BYTES",
]

# A body up to this size is parsed and validated on the event loop: a handful of events costs
# less there than the hand-off to a thread and back (~0.1 ms). Above it (about 50 typical
# events), the whole publish runs on an ingest thread (:meth:`.writer.GroupCommitStore.in_ingest_thread`).
INLINE_BYTES = 16 * 1024

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
        lines = _ndjson_lines(body, max_events)  # counted before parsing: a line costs a dict
        items: list[Any] = []
        problems: list[Problem] = []
        bad = 0
        for match in lines:
            try:
                items.append(from_json(match.group()))
            except ValueError as exc:
                bad += 1
                if len(problems) < MAX_LISTED_ERRORS:
                    number = body.count(b"\n", 0, match.start()) + 1
                    problems.append(Problem("", f"line {number} is not JSON: {_reason(exc)}", len(items)))
        if problems:
            raise ProblemError(
                400, "the NDJSON body has lines that are not JSON", errors=problems, error_count=bad
            )
        if not items:
            raise _empty()
        return items, False
    if body.count(b",") >= max_events:  # perhaps more events than allowed: count them first
        _check_array_length(body, max_events)
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


_LINE = re.compile(rb"\S[^\n]*")  # a line that is not blank, from its first non-space byte


def _ndjson_lines(body: bytes, max_events: int) -> list[re.Match[bytes]]:
    """The body's non-blank lines; 413 at the first one over ``max_events`` (so neither time
    nor memory depends on how many more there are). Blank runs are skipped in C, not looped."""
    lines: list[re.Match[bytes]] = []
    for match in _LINE.finditer(body):
        lines.append(match)
        if len(lines) > max_events:
            _check_count(len(lines), max_events, exact=False)
    return lines


def _check_array_length(body: bytes, max_events: int) -> None:
    """413 if a JSON array body holds more than ``max_events`` elements, found by decoding
    one element at a time and dropping it: memory stays that of one element, and it stops at
    the first one over. (Not JSON, or not an array: the parse that follows says so.)"""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return
    decoder = json.JSONDecoder()
    at = _skip(text, 0)
    if not text.startswith("[", at):
        return
    at, count = _skip(text, at + 1), 0
    while at < len(text) and text[at] != "]":
        try:
            _, at = decoder.raw_decode(text, at)
        except ValueError:
            return
        count += 1
        if count > max_events:
            _check_count(count, max_events, exact=False)
        at = _skip(text, at)
        if text.startswith(",", at):
            at = _skip(text, at + 1)


def _skip(text: str, at: int) -> int:
    found = _WHITESPACE.match(text, at)
    return found.end() if found else at


_WHITESPACE = re.compile(r"[ \t\n\r]*")


def _check_count(count: int, max_events: int, *, exact: bool = True) -> None:
    if count > max_events:
        many = f"{count:,}" if exact else f"more than {max_events:,}"
        raise _too_large(
            f"the body holds {many} events; send at most {max_events:,} per request",
            [Problem("body", f"{many} events; at most {max_events:,}: split the batch")],
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


def prepare_items(
    body: bytes,
    content_type: str,
    *,
    workspace: str,
    limits: ServiceLimits,
    idempotency_key: str | None,
    uid_secret: bytes,
) -> tuple[list[Any], bool]:
    """The body's events, checked as far as the service checks them (count, per-event size,
    workspace) and given their derived uids: ``(items, single)`` for the library to publish.

    Blocking and CPU-bound: called on the loop for small bodies, on an ingest thread for large."""
    items, single = parse_events(body, content_type, limits.max_events_per_request)
    check_event_sizes(items, len(body), limits)
    problems = [
        Problem("workspace", f"must be {workspace!r} (the key's workspace) or left out", i)
        for i, item in enumerate(items)
        if isinstance(item, dict) and "workspace" in item and item["workspace"] != workspace
    ]
    if problems:
        raise ProblemError(403, "events for another workspace; nothing was stored", errors=problems)
    refuse_future_timestamps(items)  # retention ages events by their timestamp (event_time.py)
    if idempotency_key:
        items = derive_uids(items, workspace, idempotency_key, uid_secret)
    return items, single


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
