"""A stream to an HTTP endpoint, signed per the Standard Webhooks specification.

Each request carries ``webhook-id`` (the event's uid, or a digest of the batch's uids: the
same on every retry, so a receiver can drop duplicates), ``webhook-timestamp`` and
``webhook-signature`` (``v1,<base64 HMAC-SHA256>``, made with the ``standardwebhooks``
package). During a secret rotation's grace period the request carries two signatures, the
new secret's and the old one's, as the specification allows, so receivers can switch keys in
their own time. The body is ``{"type": "audit_log.event", "timestamp": ..., "data": event}``
(one per event) or ``{"type": "audit_log.batch", ..., "data": [events]}`` (batched).

A 2xx answer acknowledges; 408, 429, 5xx and connection failures are retried until the
receiver comes back; any other answer (4xx, a redirect) is refused and ends, after the
stream's attempts, as a dead letter.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import httpx

from ..event import now_ms
from ..row import Row, dumps, row_to_json
from ..stores import redact_url
from .egress import CheckedTransport, EgressPolicy, EgressRefused
from .sink import DeliveryError

__all__ = ["WebhookSink", "signature_header"]

_RETRYABLE = {408, 425, 429}


def _webhook(secret: str) -> Any:
    try:
        from standardwebhooks import Webhook
    except ModuleNotFoundError:  # an optional extra: say how to get it
        raise RuntimeError(
            "webhook streams need the streams extra: pip install 'auditbird[streams]'"
        ) from None
    return Webhook(secret)


def signature_header(secrets: Sequence[str], msg_id: str, at: datetime, body: str) -> str:
    """The ``webhook-signature`` value: one ``v1,`` signature per secret, space separated."""
    return " ".join(_webhook(s).sign(msg_id, at, body) for s in secrets)


def _sign(signers: Sequence[Any], msg_id: str, at: datetime, body: str) -> str:
    return " ".join(w.sign(msg_id, at, body) for w in signers)


class WebhookSink:
    def __init__(
        self,
        url: str,
        *,
        secret: str,
        batched: bool = False,
        old_secret: str | None = None,
        old_secret_until: int | None = None,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        egress: EgressPolicy | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"webhook url {url!r}: use an http:// or https:// URL")
        self.url = url
        self.shown_url = redact_url(url)  # errors are stored and listed: no credentials in them
        self.batched = batched
        # A malformed secret fails here, when the stream starts, not on every request.
        self._signers = [_webhook(secret)]
        if old_secret and old_secret_until and old_secret_until > now_ms():
            self._signers.append(_webhook(old_secret))
        if egress is not None and transport is None:  # a stream added over the API
            transport = CheckedTransport(egress)
        self._client = httpx.Client(timeout=timeout, follow_redirects=False, transport=transport)

    def deliver(self, rows: Sequence[Row]) -> None:
        if self.batched:
            uids = "\n".join(r.uid for r in rows)
            msg_id = "msg_" + hashlib.sha256(uids.encode()).hexdigest()[:32]
            self._post(msg_id, "audit_log.batch", [row_to_json(r) for r in rows])
        else:
            for done, row in enumerate(rows):
                try:
                    self._post(row.uid, "audit_log.event", row_to_json(row))
                except DeliveryError as exc:
                    # The events before this one arrived: they must be neither resent nor
                    # dead-lettered, and a refusal is about this event only.
                    exc.delivered, exc.refused = done, 1
                    raise

    def _post(self, msg_id: str, kind: str, data: Any) -> None:
        at = datetime.now(tz=UTC)
        body = dumps({"type": kind, "timestamp": at.isoformat(), "data": data})
        headers = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": _sign(self._signers, msg_id, at, body),
        }
        try:
            response = self._client.post(self.url, content=body.encode(), headers=headers)
        except EgressRefused as exc:
            raise DeliveryError(f"webhook {self.shown_url}: {exc}", permanent=True) from exc
        except httpx.HTTPError as exc:
            raise DeliveryError(f"webhook {self.shown_url}: {type(exc).__name__}: {exc}") from exc
        status = response.status_code
        if 200 <= status < 300:
            return
        permanent = status < 500 and status not in _RETRYABLE
        hint = " (fix the receiver or the stream's URL, then replay the dead letters)" if permanent else ""
        raise DeliveryError(f"webhook {self.shown_url} answered {status}{hint}", permanent=permanent)

    def close(self) -> None:
        self._client.close()
