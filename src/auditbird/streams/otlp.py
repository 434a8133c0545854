"""A stream to an OpenTelemetry collector: OTLP/HTTP logs, JSON encoding (OTLP 1.x).

Each batch is one ``POST {endpoint}/v1/logs`` of an ``ExportLogsServiceRequest``: one resource
(``service.name`` = ``auditbird``), one scope (``auditbird``), one log record per event:

- ``timeUnixNano``: the event's timestamp; ``observedTimeUnixNano``: when it was sent;
- ``severityNumber`` 9 / ``severityText`` ``INFO``; ``eventName``: the action;
- ``body``: the event as JSON (a string, as syslog's MSG), so nothing is reshaped;
- ``attributes``: ``auditbird.uid``, ``auditbird.workspace``, ``auditbird.event_id``,
  ``auditbird.action``, ``user.id`` (the actor's id) and ``auditbird.actor.name``, for a
  collector's processors to route and filter on without parsing the body.

The JSON mapping is protobuf's (lowerCamelCase names, 64-bit integers as decimal strings,
enums as numbers), as the OTLP specification requires; the tests decode it with the official
``opentelemetry-proto`` messages. Answers follow the specification's retry rules: 2xx
acknowledges (a ``partialSuccess`` with rejected records is a refusal: the collector will not
take them again as they are), 429/502/503/504 and connection failures are retried, any other
status is a refusal that ends, after the stream's attempts, as dead letters.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from ..row import Row, row_to_wire
from ..stores import redact_url
from .egress import CheckedTransport, EgressPolicy, EgressRefused
from .sink import DeliveryError

__all__ = ["OtlpLogsSink", "export_request"]

_RETRYABLE = {429, 502, 503, 504}
_SEVERITY_INFO = 9


def _text(key: str, value: str) -> dict[str, Any]:
    return {"key": key, "value": {"stringValue": value}}


def _record(row: Row, observed_ns: int) -> dict[str, Any]:
    try:
        actor = json.loads(row.actor) if row.actor else {}
    except ValueError:
        actor = {}
    actor = actor if isinstance(actor, dict) else {}
    return {
        "timeUnixNano": str(row.timestamp * 1_000_000),
        "observedTimeUnixNano": str(observed_ns),
        "severityNumber": _SEVERITY_INFO,
        "severityText": "INFO",
        "eventName": row.action,
        "body": {"stringValue": row_to_wire(row)},
        "attributes": [
            _text("auditbird.uid", row.uid),
            _text("auditbird.workspace", row.workspace),
            _text("auditbird.event_id", row.id),
            _text("auditbird.action", row.action),
            _text("user.id", str(actor.get("id", ""))),
            _text("auditbird.actor.name", str(actor.get("name", ""))),
        ],
    }


def export_request(rows: Sequence[Row], *, service_name: str = "auditbird") -> dict[str, Any]:
    """The ``ExportLogsServiceRequest`` (OTLP JSON) for ``rows``, in commit order."""
    from .. import __version__

    observed = time.time_ns()
    return {
        "resourceLogs": [
            {
                "resource": {"attributes": [_text("service.name", service_name)]},
                "scopeLogs": [
                    {
                        "scope": {"name": "auditbird", "version": __version__},
                        "logRecords": [_record(r, observed) for r in rows],
                    }
                ],
            }
        ]
    }


class OtlpLogsSink:
    def __init__(
        self,
        endpoint: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        egress: EgressPolicy | None = None,
    ) -> None:
        if not endpoint.startswith(("http://", "https://")):
            raise ValueError(f"OTLP endpoint {endpoint!r}: use an http:// or https:// URL (OTLP/HTTP)")
        # As OTEL_EXPORTER_OTLP_ENDPOINT: the base URL; the logs path is added unless given.
        self.url = (
            endpoint if endpoint.rstrip("/").endswith("/v1/logs") else endpoint.rstrip("/") + "/v1/logs"
        )
        self.shown_url = redact_url(self.url)
        self._headers = {**dict(headers or {}), "content-type": "application/json"}
        if egress is not None and transport is None:  # a stream added over the API
            transport = CheckedTransport(egress)
        self._client = httpx.Client(timeout=timeout, follow_redirects=False, transport=transport)

    def deliver(self, rows: Sequence[Row]) -> None:
        body = json.dumps(export_request(rows), separators=(",", ":")).encode()
        try:
            response = self._client.post(self.url, content=body, headers=self._headers)
        except EgressRefused as exc:
            raise DeliveryError(f"OTLP {self.shown_url}: {exc}", permanent=True) from exc
        except httpx.HTTPError as exc:
            raise DeliveryError(f"OTLP {self.shown_url}: {type(exc).__name__}: {exc}") from exc
        status = response.status_code
        if 200 <= status < 300:
            rejected, message = _partial_success(response)
            if rejected:
                raise DeliveryError(
                    f"OTLP {self.shown_url} rejected {rejected} of {len(rows)} log records: {message}",
                    permanent=True,
                )
            return
        permanent = status not in _RETRYABLE  # the specification: retry only these
        hint = " (fix the collector or the stream's URL, then replay the dead letters)" if permanent else ""
        raise DeliveryError(f"OTLP {self.shown_url} answered {status}{hint}", permanent=permanent)

    def close(self) -> None:
        self._client.close()


def _partial_success(response: httpx.Response) -> tuple[int, str]:
    if not response.content or "json" not in response.headers.get("content-type", ""):
        return 0, ""  # an empty 200, or a protobuf answer we did not ask for: all taken
    try:
        partial = response.json().get("partialSuccess") or {}
        return int(partial.get("rejectedLogRecords") or 0), str(partial.get("errorMessage", ""))[:500]
    except (ValueError, AttributeError, TypeError):
        return 0, ""
