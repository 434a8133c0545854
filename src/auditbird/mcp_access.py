"""Who calls the MCP tools: an API key with read scope, or a viewer link, checked exactly as the
REST API checks them (:mod:`auditbird.service.auth`).

A viewer link (``abl1.…``, ``auditbird keys viewer-link``) grants reads of one workspace until
it expires, perhaps of one actor's or one target's events only; the tools keep to that
restriction as the viewer's routes do: a search gets the restriction as filters, a history
leaves out the other events, and what cannot be restricted (a projection folds every event of
a subject) is refused.
"""

from __future__ import annotations

from typing import Any

from .service.auth import Credential
from .service.keys import ApiKey, KeyStore, keys_path_for
from .service.viewer_links import PREFIX, ViewerLinks

__all__ = ["McpAccess", "KeyVerifier", "restricted_filters"]


class McpAccess:
    """The key store and viewer-link signer beside a store; :meth:`resolve` checks a token."""

    def __init__(self, store_url: str) -> None:
        self.keys = KeyStore(keys_path_for(store_url))
        self._links: ViewerLinks | None = None

    @property
    def links(self) -> ViewerLinks:
        if self._links is None:  # opened on the first link: most callers bring keys
            self._links = ViewerLinks(self.keys)
        return self._links

    def resolve(self, token: str | None) -> Credential | None:
        """The credential behind ``token`` if it may read now (a read/admin key, a live link)."""
        if not token:
            return None
        if token.startswith(PREFIX):
            grant = self.links.verify(token)
            if grant is None:
                return None
            return Credential(ApiKey(grant.link_id, grant.workspace, "read", name="viewer link"), grant)
        key = self.keys.verify(token)
        return Credential(key) if key is not None and key.can_read else None

    def first(self, token: str) -> Credential:
        """As :meth:`resolve`, for the token a stdio server starts with: ValueError saying why not."""
        if token.startswith(PREFIX):
            found = self.resolve(token)
            if found is None:
                raise ValueError(
                    "the viewer link has expired or was not made with this store's keys file; "
                    "ask for a new one (auditbird keys viewer-link)"
                )
            return found
        key = self.keys.verify(token)
        if key is None:
            raise ValueError(
                "the API key is unknown or revoked; create one with `auditbird keys create --scope read`"
            )
        if not key.can_read:
            raise ValueError(f"the API key's scope is {key.scope!r}; the MCP tools read: use a read key")
        return Credential(key)

    def close(self) -> None:
        self.keys.close()
        if self._links is not None:
            self._links.close()


class KeyVerifier:
    """The MCP SDK's bearer-token check over HTTP: a read key or a live viewer link, or nothing."""

    def __init__(self, access: McpAccess) -> None:
        self.access = access

    async def verify_token(self, token: str) -> Any:
        from mcp.server.auth.provider import AccessToken

        found = self.access.resolve(token)
        if found is None:
            return None
        return AccessToken(token=token, client_id=found.key.key_id, scopes=[found.key.scope])


def restricted_filters(cred: Credential, filters: dict[str, Any]) -> dict[str, Any]:
    """``filters`` narrowed to a link's restriction; ValueError if they ask for something else."""
    out = dict(filters)
    for name, value in cred.restrictions().items():
        asked = out.get(name)
        if asked is not None and asked != value:
            raise ValueError(f"{name}: this viewer link shows only events with {name} {value!r}")
        out[name] = value
    return out
