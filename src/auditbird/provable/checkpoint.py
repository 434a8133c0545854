"""Signed checkpoints: the C2SP ``tlog-checkpoint`` body signed as a C2SP ``signed-note``
with Ed25519, so transparency-log tooling (Go's ``golang.org/x/mod/sumdb/note``, sigsum,
Trillian's clients) can check them.

A checkpoint reads::

    auditbird-audit/acme          <- origin: the key name, then the workspace (percent-encoded)
    1234                          <- tree size
    Zm9vYmFy...=                  <- root hash, base64

    — auditbird-audit AbCd...=    <- key id (4 bytes) and Ed25519 signature, base64

The signing key is made on first use and kept beside the store, 0600, never in it:
``<store>.checkpoint.key`` (``PRIVATE+KEY+name+id+base64``, the note package's format). The
verifier key, ``name+id+base64``, is what a reader pins.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from ..stores.sqlite import SQLiteStore
from .proofs import log_workspace, provable_store, tree_root

__all__ = ["Checkpoint", "CheckpointError", "Signer", "signer_for", "sign_checkpoint", "open_checkpoint"]

_ED25519 = b"\x01"  # the signed-note algorithm byte of Ed25519
_DASH = "\u2014 "  # a signature line starts with an em dash and a space
_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
MAX_CHECKPOINT_BYTES = 64 * 1024  # a checkpoint is a few lines: anything longer is not one


class CheckpointError(ValueError):
    """A checkpoint or key that does not parse, or whose signature does not verify."""


def _crypto() -> Any:
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ModuleNotFoundError as exc:  # pragma: no cover - the extra is missing
        raise CheckpointError(
            "signed checkpoints need `cryptography`: pip install 'auditbird[provable]'"
        ) from exc
    return ed25519


def _key_id(name: str, public: bytes) -> int:
    return int.from_bytes(hashlib.sha256(name.encode() + b"\n" + _ED25519 + public).digest()[:4], "big")


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    def body(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"


class Signer:
    """An Ed25519 note signer named ``name``."""

    def __init__(self, name: str, seed: bytes) -> None:
        if not _NAME.fullmatch(name):
            raise CheckpointError(f"key name {name!r}: use letters, digits, '.', '_' or '-' (at most 64)")
        self.name = name
        self._key = _crypto().Ed25519PrivateKey.from_private_bytes(seed)
        self.public = self._key.public_key().public_bytes_raw()
        self.key_id = _key_id(name, self.public)

    @classmethod
    def parse(cls, text: str) -> Signer:
        parts = text.strip().split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise CheckpointError("not a signer key: expected PRIVATE+KEY+name+id+base64")
        raw = base64.b64decode(parts[4])
        if raw[:1] != _ED25519 or len(raw) != 33:
            raise CheckpointError("the signer key is not an Ed25519 key")
        return cls(parts[2], raw[1:])

    def private_text(self) -> str:
        seed = self._key.private_bytes_raw()
        return f"PRIVATE+KEY+{self.name}+{self.key_id:08x}+{base64.b64encode(_ED25519 + seed).decode()}"

    def verifier_key(self) -> str:
        """``name+id+base64``: the key a reader pins to check checkpoints."""
        return f"{self.name}+{self.key_id:08x}+{base64.b64encode(_ED25519 + self.public).decode()}"

    def sign(self, body: str) -> str:
        """The signed note: ``body``, a blank line, and this key's signature line."""
        sig = self._key.sign(body.encode())
        blob = base64.b64encode(self.key_id.to_bytes(4, "big") + sig).decode()
        return f"{body}\n{_DASH}{self.name} {blob}\n"


def _key_path(store: Any) -> str:
    path = store.path if isinstance(store, SQLiteStore) else ""
    if not path or path == ":memory:":
        raise CheckpointError("checkpoints are signed for a log in a file: pass --store sqlite:///path.db")
    return path + ".checkpoint.key"


def signer_for(log_or_store: Any) -> Signer:
    """The store's signing key, made on first use (0600, beside the store, never inside it)."""
    path = _key_path(provable_store(log_or_store))
    try:
        with open(path, encoding="ascii") as f:
            return Signer.parse(f.read())
    except FileNotFoundError:
        pass
    stem = re.sub(r"[^A-Za-z0-9._-]", "-", os.path.basename(path).split(".")[0])[:54] or "log"
    signer = Signer(f"auditbird-{stem}", os.urandom(32))
    try:  # O_EXCL: two processes making the key at once keep one, the other reads it
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        with open(path, encoding="ascii") as f:
            return Signer.parse(f.read())
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(signer.private_text() + "\n")
    return signer


def origin_of(signer: Signer, workspace: str) -> str:
    return f"{signer.name}/{quote(workspace, safe='')}" if workspace else signer.name


def workspace_of(origin: str) -> str:
    """The workspace an origin names (the part after the key name; ``""`` when none)."""
    return unquote(origin.partition("/")[2])


def sign_checkpoint(log_or_store: Any, *, workspace: str | None = None) -> str:
    """A signed checkpoint of the workspace's tree as it is now."""
    signer = signer_for(log_or_store)
    ws = log_workspace(log_or_store, workspace)
    size, root = tree_root(log_or_store, workspace=ws)
    return signer.sign(Checkpoint(origin_of(signer, ws), size, root).body())


def _parse_verifier(key: str) -> tuple[str, int, bytes]:
    parts = key.strip().split("+", 2)
    if len(parts) != 3:
        raise CheckpointError(
            "not a verifier key: expected name+id+base64 (`auditbird checkpoint --public-key`)"
        )
    name, hex_id, b64 = parts
    try:
        raw, key_id = base64.b64decode(b64, validate=True), int(hex_id, 16)
    except ValueError as exc:
        raise CheckpointError(f"the verifier key does not parse: {exc}") from exc
    if raw[:1] != _ED25519 or len(raw) != 33 or _key_id(name, raw[1:]) != key_id:
        raise CheckpointError("the verifier key is not a well-formed Ed25519 note key")
    return name, key_id, raw[1:]


def open_checkpoint(text: str, verifier_key: str) -> Checkpoint:
    """The checkpoint in ``text`` if ``verifier_key`` signed it, else :class:`CheckpointError`."""
    name, key_id, public = _parse_verifier(verifier_key)
    if len(text) > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(f"a checkpoint is a few lines, not {len(text)} characters")
    body, sep, signatures = text.rpartition("\n\n")
    if not sep or not signatures.endswith("\n"):
        raise CheckpointError("not a signed note: expected the body, a blank line and signature lines")
    body += "\n"
    verified = False
    for line in signatures[:-1].split("\n"):
        if not line.startswith(_DASH):
            raise CheckpointError(f"not a signature line: {line[:60]!r}")
        signer_name, _, blob = line[len(_DASH) :].partition(" ")
        try:
            raw = base64.b64decode(blob, validate=True)
        except ValueError as exc:
            raise CheckpointError(f"signature of {signer_name!r} is not base64") from exc
        if signer_name != name or raw[:4] != key_id.to_bytes(4, "big"):
            continue
        try:
            _crypto().Ed25519PublicKey.from_public_bytes(public).verify(raw[4:], body.encode())
        except Exception as exc:  # cryptography's InvalidSignature
            raise CheckpointError(
                f"the signature of {name!r} does not verify: the checkpoint was altered"
            ) from exc
        verified = True
    if not verified:
        raise CheckpointError(
            f"the checkpoint carries no signature by {name!r}: wrong key or an unsigned checkpoint"
        )
    lines = body.split("\n")
    try:
        origin, size_text, root_b64 = lines[0], lines[1], lines[2]
        size, root = int(size_text), base64.b64decode(root_b64, validate=True)
    except (IndexError, ValueError) as exc:
        raise CheckpointError("the checkpoint body is not origin / size / base64 root hash") from exc
    if not origin or size < 0 or len(root) != 32 or not size_text.isdigit():
        raise CheckpointError("the checkpoint body is not origin / size / base64 root hash")
    return Checkpoint(origin, size, root)
