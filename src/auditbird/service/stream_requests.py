"""What ``POST /v1/streams`` accepts, and the checks between it and the library.

The body names a destination by kind; :func:`target` turns it into a checked
:class:`~auditbird.streams.StreamTarget` (the CLI builds the same from its options), refusing
what only the server's operator may name (files, CA files) and any destination that is not a
public address or on the operator's ``AUDITBIRD_STREAM_HOSTS`` (:mod:`auditbird.streams.egress`).
"""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from ..streams import StreamTarget
from ..streams.egress import EgressPolicy

__all__ = ["FilterIn", "StreamIn", "SecretIn", "allowed_hosts", "target"]


def allowed_hosts(setting: str) -> EgressPolicy:
    """``AUDITBIRD_STREAM_HOSTS``: the hosts and networks, beyond public addresses, streams added
    over the API may deliver to (:mod:`auditbird.streams.egress`)."""
    return EgressPolicy.from_setting(setting)


class FilterIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    actions: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(default=[], max_length=1_000)
    target_type: Annotated[str | None, Field(max_length=200)] = None
    target_id: Annotated[str | None, Field(max_length=512)] = None
    actor_in: list[Annotated[str, Field(min_length=1, max_length=512)]] = Field(default=[], max_length=1_000)
    actor_not_in: list[Annotated[str, Field(min_length=1, max_length=512)]] = Field(
        default=[], max_length=1_000
    )


class StreamIn(BaseModel):
    """A webhook (``url``, ``batched``, ``secret``), a syslog stream (``address``) or an OTLP
    logs stream (``url``, ``headers``)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"name": "siem", "kind": "webhook", "url": "https://siem.example/hook"}]
        },
    )
    name: Annotated[str, Field(min_length=1, max_length=64)]
    kind: Literal["webhook", "syslog", "otlp", "ndjson"]
    url: Annotated[
        str | None, Field(max_length=2_048, description="webhook: its URL; otlp: the collector's")
    ] = None
    headers: Annotated[
        dict[str, Annotated[str, Field(max_length=4_096)]] | None,
        Field(max_length=20, description="otlp: headers the collector needs (kept secret)"),
    ] = None
    batched: bool = False
    secret: Annotated[
        str | None, Field(max_length=200, description="webhook: whsec_...; default: a new one")
    ] = None
    address: Annotated[str | None, Field(max_length=300, description="syslog: tcp:// or tls://HOST:PORT")] = (
        None
    )
    filter: FilterIn = Field(default_factory=FilterIn)
    max_attempts: Annotated[int, Field(ge=1, le=100)] = 5
    from_now: bool = False


class SecretIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    grace_hours: Annotated[float, Field(ge=0, le=24 * 30)] = 24


def target(body: StreamIn, allowed: EgressPolicy) -> StreamTarget:
    target = _parse_target(body)
    o = target.options
    if target.kind == "syslog":
        host, port = o["host"], o["port"]
    else:
        parts = urlsplit(o["url"])
        host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    allowed.check_at_add(host, port)
    # The runner (and a replay) checks this stream's every connection again: a name may
    # resolve elsewhere later. The operator's CLI streams carry no mark and are not checked.
    o["restricted"] = True
    return target


def _parse_target(body: StreamIn) -> StreamTarget:
    if body.kind == "ndjson":
        raise ValueError(
            "NDJSON streams write files on the server's disk: its operator adds them with "
            "`auditbird streams add --ndjson`; over the API add a webhook or a syslog stream"
        )
    if body.kind == "otlp":
        if not body.url or body.address is not None or body.secret is not None:
            raise ValueError("an otlp stream takes url (and headers), not address or secret")
        return StreamTarget.otlp(body.url, headers=body.headers)
    if body.headers is not None:
        raise ValueError("headers are for otlp streams")
    if body.kind == "webhook":
        if not body.url or body.address is not None:
            raise ValueError("a webhook stream takes url (and batched, secret), not address")
        return StreamTarget.webhook(body.url, secret=body.secret, batched=body.batched)
    if not body.address or body.url is not None or body.secret is not None:
        raise ValueError(
            "a syslog stream takes address (tcp://HOST:PORT or tls://HOST:PORT), not url or secret"
        )
    # Over TLS the server's certificate is checked against the system's CAs: a CA file is a
    # path on the server's disk, which only its operator names (CLI --ca-file).
    return StreamTarget.syslog(body.address)
