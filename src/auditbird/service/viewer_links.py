"""Viewer links: short-lived, read-only sign-ins to the web viewer, restricted to one workspace.

A link carries a signed grant ``{workspace, actor, target, exp}`` in its URL fragment (a
fragment never reaches server logs or ``Referer`` headers). The signature is HMAC-SHA256 with a
secret kept with the service's keys (:class:`~.keys.KeyStore`: the keys file, or the PostgreSQL
database every replica shares; ``auditbird keys`` and ``auditbird serve`` find them the same
way, so a link made by one is accepted by the other, across restarts and replicas). Rotating the
secret revokes every outstanding link at once.

>>> links = ViewerLinks("audit.keys.db")        # or a KeyStore, or "postgresql://..."
>>> token = links.sign(Grant(workspace="acme", expires_at=now_ms() + 3_600_000))
>>> links.verify(token).workspace
'acme'
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import secrets
import time
from dataclasses import dataclass

from .keys import KeyStore

__all__ = ["Grant", "ViewerLinks", "PREFIX", "parse_duration", "parse_target", "link_url", "MAX_TTL_MS"]

PREFIX = "abl1."  # never a valid API key (``ab_<id>_<secret>``), so the two cannot be confused
MAX_TTL_MS = 30 * 86_400_000
_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)\s*$")
_UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


@dataclass(frozen=True)
class Grant:
    """What a viewer link allows: read one workspace (and only one actor's / target's events)."""

    workspace: str
    expires_at: int  # ms since epoch
    actor_id: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    nonce: str = ""

    @property
    def link_id(self) -> str:
        return f"link-{self.nonce}" if self.nonce else "link"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


_B64_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
_MAC_CHARS = 43  # an HMAC-SHA256, unpadded URL-safe base64


def _unb64(text: str) -> bytes:
    """Strict: only the URL-safe alphabet, no padding, and the one canonical spelling of the
    bytes (Python's decoder would skip junk characters and ignore spare bits)."""
    if not set(text) <= _B64_ALPHABET:
        raise ValueError("not URL-safe base64")
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(raw) != text:
        raise ValueError("not the canonical encoding")
    return raw


class ViewerLinks:
    """Signs and verifies viewer links with the secret kept beside the service's keys.

    ``keys``: the service's :class:`KeyStore` (shared, left open), or where one is (a keys file
    path or a ``postgresql://`` URL: opened here and closed by :meth:`close`)."""

    def __init__(self, keys: KeyStore | str | os.PathLike[str]) -> None:
        self._owned = not isinstance(keys, KeyStore)
        self.keys: KeyStore = keys if isinstance(keys, KeyStore) else KeyStore(keys, cache_seconds=0)

    def _secret(self) -> bytes:
        # Read on every use: a rotation by `auditbird keys` takes effect in a running server at once.
        return self.keys.link_secret()

    def rotate(self) -> None:
        """A new secret: every link signed before no longer verifies."""
        self.keys.rotate_link_secret()

    def sign(self, grant: Grant) -> str:
        claims = {
            "w": grant.workspace,
            "exp": grant.expires_at,
            "n": grant.nonce or secrets.token_hex(6),
        }
        if grant.actor_id is not None:
            claims["a"] = grant.actor_id
        if grant.target_type is not None:
            claims["tt"] = grant.target_type
        if grant.target_id is not None:
            claims["ti"] = grant.target_id
        body = PREFIX + _b64(json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode())
        mac = hmac.new(self._secret(), body.encode(), hashlib.sha256).digest()
        return f"{body}.{_b64(mac)}"

    def verify(self, token: str, *, now: int | None = None) -> Grant | None:
        """The grant of a well-signed, unexpired link; None for anything else."""
        if not token.startswith(PREFIX) or len(token) > 2_048:
            return None
        body, _, mac = token.rpartition(".")
        if not body or len(mac) != _MAC_CHARS:
            return None
        expected = hmac.new(self._secret(), body.encode(), hashlib.sha256).digest()
        try:
            given = _unb64(mac)
            claims = json.loads(_unb64(body[len(PREFIX) :]))
        except (binascii.Error, ValueError, UnicodeDecodeError):
            return None
        if not hmac.compare_digest(expected, given) or not isinstance(claims, dict):
            return None
        exp = claims.get("exp")
        if not isinstance(exp, int) or isinstance(exp, bool):
            return None
        if exp <= (int(time.time() * 1000) if now is None else now):
            return None
        workspace = claims.get("w")
        if not isinstance(workspace, str):
            return None
        optional = {k: claims.get(k) for k in ("a", "tt", "ti")}
        if any(v is not None and not isinstance(v, str) for v in optional.values()):
            return None
        return Grant(
            workspace=workspace,
            expires_at=exp,
            actor_id=optional["a"],
            target_type=optional["tt"],
            target_id=optional["ti"],
            nonce=str(claims.get("n", "")),
        )

    def close(self) -> None:
        if self._owned:
            self.keys.close()


def parse_duration(text: str) -> int:
    """``90s``, ``15m``, ``1h``, ``7d``, ``2w`` -> ms; at most 30 days."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"--expires {text!r}: use a number and a unit, e.g. 15m, 1h, 7d")
    ms = int(match.group(1)) * _UNIT_MS[match.group(2)]
    if not 0 < ms <= MAX_TTL_MS:
        raise ValueError(f"--expires {text!r}: a viewer link lives from 1s to 30d")
    return ms


def parse_target(text: str) -> tuple[str, str]:
    """``monitor:1`` -> ``("monitor", "1")`` (the id may itself contain colons)."""
    kind, sep, ident = text.partition(":")
    if not sep or not kind or not ident:
        raise ValueError(f"--target {text!r}: use TYPE:ID, e.g. monitor:1")
    return kind, ident


def link_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/#vl={token}"
