"""Who is calling: ``Authorization: Bearer ab_<id>_<secret>`` -> an :class:`ApiKey` (workspace + scope).

``read`` reads, ``write`` writes, ``admin`` does both. Every request also spends a token of
its key's rate (429 with ``Retry-After`` when the bucket is empty). The viewer's routes also
accept a viewer link (``Bearer abl1.…``, :mod:`.viewer_links`): a read-only grant, perhaps
restricted to one actor or target.

:func:`resolve` is the service's one credential check: every route's dependency
(:data:`ReadKey`, :data:`WriteKey`, :data:`AnyKey`, :data:`ReaderDep`) is built on it, and the
lean ``POST /v1/events`` calls :func:`authenticate`, its API-key half.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..event import Event
from .keys import ApiKey
from .problems import ProblemError
from .state import ServiceState
from .viewer_links import PREFIX, Grant, ViewerLinks

__all__ = [
    "Credential",
    "credential",
    "resolve",
    "require",
    "authenticate",
    "bearer_token",
    "links_of",
    "still_valid",
    "viewer_link_key",
    "ReadKey",
    "WriteKey",
    "AnyKey",
    "ReaderDep",
]

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
            f"this API key is unknown or revoked in this server's keys ({state.keys.label}, "
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


@dataclass(frozen=True)
class Credential:
    """Who calls: an API key, or a viewer link's grant (then ``grant`` is set)."""

    key: ApiKey  # for a link: a stand-in naming the link, so reads are recorded like any other
    grant: Grant | None = None

    @property
    def workspace(self) -> str:
        return self.key.workspace

    def restrictions(self) -> dict[str, str]:
        """A link's ``actor_id`` / ``target_type`` / ``target_id`` restriction (empty for a key)."""
        g = self.grant
        if g is None:
            return {}
        found = {"actor_id": g.actor_id, "target_type": g.target_type, "target_id": g.target_id}
        return {k: v for k, v in found.items() if v is not None}

    def allows(self, event: Event) -> bool:
        """Whether ``event`` is within the restriction."""
        r = self.restrictions()
        if "actor_id" in r and event.actor.id != r["actor_id"]:
            return False
        if "target_type" in r or "target_id" in r:
            return any(
                r.get("target_type", t.kind) == t.kind and r.get("target_id", t.id) == t.id
                for t in event.targets
            )
        return True


def links_of(app: Any) -> ViewerLinks:
    """The app's viewer-link signer, over the secret kept with its keys (made on first use)."""
    links: ViewerLinks | None = getattr(app.state, "viewer_links", None)
    if links is None:
        links = app.state.viewer_links = ViewerLinks(app.state.auditbird.keys)
    return links


def _link_credential(state: ServiceState, links: ViewerLinks, token: str) -> Credential:
    grant = links.verify(token)
    if grant is None:
        raise ProblemError(
            401,
            "this viewer link has expired or is not valid for this server's keys "
            f"({links.keys.label}, beside its store); ask for a new one "
            "(`auditbird keys viewer-link --store <the server's store>`)",
            slug="unauthorized",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    wait = state.limiter.take(grant.link_id, state.limits.default_rate)
    if wait > 0:
        raise ProblemError(
            429,
            "too many requests with this viewer link; retry after the Retry-After delay",
            slug="rate-limited",
            headers={"Retry-After": state.limiter.retry_after(wait)},
        )
    return Credential(ApiKey(grant.link_id, grant.workspace, "read", name="viewer link"), grant)


def resolve(request: Request, token: str | None, need: Need, *, links: bool = False) -> Credential:
    """The credential behind a bearer ``token``: its API key, allowed to do ``need``; with
    ``links``, a viewer link is accepted too (read-only: the viewer's routes)."""
    state: ServiceState = request.app.state.auditbird
    if links and token is not None and token.startswith(PREFIX):
        return _link_credential(state, links_of(request.app), token)
    return Credential(authenticate(state, token, need))


def credential(need: Need, *, links: bool = False) -> Callable[..., Awaitable[Credential]]:
    """The credential dependency (:func:`resolve` of the request's bearer token)."""

    async def principal(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)] = None,
    ) -> Credential:
        token = credentials.credentials if credentials is not None else None
        return resolve(request, token, need, links=links)

    return principal


def require(need: Need) -> Callable[..., Awaitable[ApiKey]]:
    """The API key of :func:`resolve` (the API's routes take no viewer links)."""

    async def key(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)] = None,
    ) -> ApiKey:
        token = credentials.credentials if credentials is not None else None
        return resolve(request, token, need).key

    return key


def still_valid(app: Any, token: str) -> bool:
    """Whether ``token`` (a key or a viewer link) still verifies: a long answer (the live
    tail) re-checks it, so a revoked key or a rotated link secret ends it."""
    if token.startswith(PREFIX):
        return links_of(app).verify(token) is not None
    return app.state.auditbird.keys.verify(token) is not None


def viewer_link_key(app: Any, token: str) -> ApiKey | None:
    """For the service's own auth, should it accept viewer links on ``/v1/events`` and
    ``/v1/export``: a read-only stand-in key for an unexpired link *without* an actor/target
    restriction (those routes could not enforce one), else None."""
    if not token.startswith(PREFIX):
        return None
    grant = links_of(app).verify(token)
    if grant is None or grant.actor_id or grant.target_type or grant.target_id:
        return None
    return ApiKey(grant.link_id, grant.workspace, "read", name="viewer link")


ReadKey = Annotated[ApiKey, Depends(require("read"))]
WriteKey = Annotated[ApiKey, Depends(require("write"))]
AnyKey = Annotated[ApiKey, Depends(require("any"))]
#: An API key with read scope, or a live viewer link (the viewer's routes).
ReaderDep = Annotated[Credential, Depends(credential("read", links=True))]
