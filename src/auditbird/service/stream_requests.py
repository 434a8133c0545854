"""What ``POST /v1/streams`` accepts, and the checks between it and the library.

The body names a destination by kind; :func:`target` turns it into a checked
:class:`~auditbird.streams.StreamTarget` (the CLI builds the same from its options), refusing
what only the server's operator may name (files, CA files) and, when the operator set
``AUDITBIRD_STREAM_HOSTS``, any host not on that allowlist.
"""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from ..streams import StreamTarget

__all__ = ["FilterIn", "StreamIn", "SecretIn", "allowed_hosts", "target"]


def allowed_hosts(setting: str) -> tuple[str, ...] | None:
    """``AUDITBIRD_STREAM_HOSTS``: the hosts streams added over the API may deliver to, comma
    separated; ``.example.com`` allows every name under it. Empty: any host."""
    hosts = tuple(h.strip().lower().rstrip(".") for h in setting.split(",") if h.strip())
    return hosts or None


def _check_host(allowed: tuple[str, ...] | None, host: str) -> None:
    if allowed is None:
        return
    name = host.lower().rstrip(".")
    if not any(name == a or (a.startswith(".") and name.endswith(a)) for a in allowed):
        raise ValueError(
            f"host {host!r} is not among the hosts this server lets streams deliver to "
            f"({', '.join(allowed)}; its operator sets AUDITBIRD_STREAM_HOSTS)"
        )


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


def target(body: StreamIn, allowed: tuple[str, ...] | None) -> StreamTarget:
    target = _parse_target(body)
    o = target.options
    _check_host(allowed, o["host"] if target.kind == "syslog" else urlsplit(o["url"]).hostname or "")
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
