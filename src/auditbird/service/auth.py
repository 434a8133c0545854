"""Who is calling: ``Authorization: Bearer ab_<id>_<secret>`` -> an :class:`ApiKey` (workspace + scope).

``read`` reads, ``write`` writes, ``admin`` does both. Every request also spends a token of
its key's rate (429 with ``Retry-After`` when the bucket is empty).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Literal

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .keys import ApiKey
from .problems import ProblemError
from .state import ServiceState

__all__ = ["require", "authenticate", "bearer_token", "ReadKey", "WriteKey", "AnyKey"]

bearer = HTTPBearer(
    auto_error=False,
    bearerFormat="ab_<id>_<secret>",
    description="An API key from `auditbird keys create --workspace W --scope read|write|admin`.",
)

Need = Literal["read", "write", "any"]


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (as :data:`bearer` reads it)."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def authenticate(state: ServiceState, token: str | None, need: Need) -> ApiKey:
    """The key behind ``token``, allowed to do ``need`` and within its rate; else a problem.

    The one check every route makes, through :func:`require` (FastAPI dependency) or directly
    (the lean ``POST /v1/events``)."""
    if not token:
        raise ProblemError(
            401,
            "send an API key: `Authorization: Bearer ab_...` (create one with `auditbird keys create`)",
            slug="unauthorized",
            headers={"WWW-Authenticate": "Bearer"},
        )
    key = state.keys.verify(token)
    if key is None:
        raise ProblemError(
            401,
            # Where the server looked (the file's name only: a caller without a key learns no path).
            f"this API key is unknown or revoked in this server's keys file ({state.keys.path.name}, "
            "beside its store); create one with `auditbird keys create --store <the server's store>`",
            slug="unauthorized",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    if need == "read" and not key.can_read:
        raise ProblemError(403, f"this key has scope {key.scope!r}; reading needs 'read' or 'admin'")
    if need == "write" and not key.can_write:
        raise ProblemError(403, f"this key has scope {key.scope!r}; writing needs 'write' or 'admin'")
    rate = key.rate if key.rate is not None else state.limits.default_rate
    wait = state.limiter.take(key.key_id, rate)
    if wait > 0:
        state.metrics.add("rate_limited")
        raise ProblemError(
            429,
            f"this key is limited to {rate:g} requests per second; retry after the Retry-After delay",
            slug="rate-limited",
            headers={"Retry-After": state.limiter.retry_after(wait)},
        )
    return key


def require(need: Need) -> Callable[..., Awaitable[ApiKey]]:
    async def principal(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)] = None,
    ) -> ApiKey:
        state: ServiceState = request.app.state.auditbird
        return authenticate(state, credentials.credentials if credentials is not None else None, need)

    return principal


ReadKey = Annotated[ApiKey, Depends(require("read"))]
WriteKey = Annotated[ApiKey, Depends(require("write"))]
AnyKey = Annotated[ApiKey, Depends(require("any"))]
