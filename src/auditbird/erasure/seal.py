"""Sealing personal values on publish, and opening them on every read.

A sealed value is one self-describing string, ``$erasable:v1:<kid>:<base64url(nonce | ct)>``:
AES-256-GCM under the subject's key ``kid``, with the associated data binding it to its
workspace, event uid and field path, so a ciphertext copied into another event (or another
field) fails authentication instead of reading as that event's data. The stored row, and so
the Merkle leaf (RFC 8785 JSON of the stored event), holds only this string.

Reading (:func:`decode_sealed`, called by :func:`auditbird.codec.decode` for rows that hold a
sealed value) replaces each one by its plaintext, by ``"[erased]"`` when its key is gone, or by
``"[unreadable]"`` with the event's ``schema_error`` naming the field when it fails
authentication: a damaged value is reported, and never fails the read.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from pydantic import BaseModel

from .._errors import AuditValidationError, Problem
from ..event import Actor, Event
from ..row import Row
from .keys import KeyStoreUnavailable, keyring_lookup
from .marker import personal_fields

__all__ = [
    "KeyMaker",
    "PREFIX",
    "ERASED",
    "UNREADABLE",
    "MARK",
    "holds_sealed",
    "seal_row",
    "refuse_lookalikes",
    "decode_sealed",
    "actor_subject",
]

PREFIX = "$erasable:v1:"
MARK = '"$erasable:'  # how a sealed value starts inside a row's JSON column


def holds_sealed(row: Row) -> bool:
    """Whether ``row`` holds a sealed value (opening it asks a key store): two substring
    checks, on the path every read takes."""
    return MARK in (row.actor or "") or (row.metadata is not None and MARK in row.metadata)


ERASED = "[erased]"
UNREADABLE = "[unreadable]"
# Actors that are not people: their names are not personal data.
_NOT_PEOPLE = frozenset({"system", "api_key", "service", "bot"})
_NONCE = 12
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


class KeyMaker(Protocol):
    """What sealing needs of a key store (a :class:`SubjectKeyStore`, or the caller's
    transaction for ``emit`` on PostgreSQL: :class:`~auditbird.erasure.keys_postgres.TransactionKeys`)."""

    def key_for(self, workspace: str, subject: str) -> tuple[str, Any]: ...


def actor_subject(actor: Actor) -> str | None:
    """``user:<actor id>`` for an actor who is a person (an id, and no machine ``type``)."""
    if not actor.id or (actor.type or "").lower() in _NOT_PEOPLE:
        return None
    return f"user:{actor.id}"


def _aad(workspace: str, uid: str, path: str) -> bytes:
    return f"auditbird-erasable-v1\0{workspace}\0{uid}\0{path}".encode()


def _seal(keys: KeyMaker, workspace: str, uid: str, subject: str, path: str, value: str) -> str:
    kid, cipher = keys.key_for(workspace, subject)
    nonce = os.urandom(_NONCE)
    ct = cipher.encrypt(nonce, value.encode("utf-8"), _aad(workspace, uid, path))
    return PREFIX + kid + ":" + base64.urlsafe_b64encode(nonce + ct).rstrip(b"=").decode("ascii")


def refuse_lookalikes(row: Row) -> None:
    """Refuse a row whose actor or metadata holds a string starting with ``$erasable:``, before
    sealing: reads open every such string (a key look-up each), so a writer's own would read as
    [erased] or [unreadable] and cost look-ups on every read. Only sealing writes the prefix.

    A substring check on the JSON our encoder wrote (it never escapes ``$``); only a hit is
    parsed, to name the field."""
    problems = [
        Problem(
            path,
            f"starts with {PREFIX[:10]!r}, which auditbird reserves for the values it "
            "encrypts; store it without that prefix (e.g. escape its first character)",
        )
        for root, text in (("actor", row.actor), ("metadata", row.metadata))
        if text is not None and MARK in text
        for path in _lookalike_paths(text, root)
    ]
    if problems:
        raise AuditValidationError(problems)


def _lookalike_paths(text: str, root: str) -> list[str]:
    found: list[str] = []

    def walk(value: Any, path: str) -> None:
        if isinstance(value, str):
            if value.startswith("$erasable:"):
                found.append(path)
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(k, path)  # a key spelled so is refused too, under its parent's path
                walk(v, f"{path}.{k}")
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, f"{path}.{i}")

    walk(json.loads(text), root)
    return found or [root]


def seal_row(event: Event, row: Row, keys: KeyMaker) -> Row:
    """``row`` with the event's personal values sealed: the actor's name (a person's), and the
    metadata fields its action's model marks :class:`~auditbird.Personal`.

    Raises :class:`AuditValidationError` when a personal field has no subject to key it by, or
    a value already looks sealed (:func:`refuse_lookalikes`)."""
    refuse_lookalikes(row)
    actor_json, metadata_json = row.actor, row.metadata
    subject = actor_subject(event.actor)
    if subject is not None and event.actor.name:
        sealed_name = _seal(keys, row.workspace, row.uid, subject, "actor.name", event.actor.name)
        # The name's JSON spliced in place (an unescaped `"name":` can only be the key: inside a
        # JSON string every quote is escaped); parsed and re-written when the escaping differs.
        plain = '"name":' + _dumps(event.actor.name)
        if plain in row.actor:
            actor_json = row.actor.replace(plain, '"name":' + _dumps(sealed_name), 1)
        else:
            actor = json.loads(row.actor)
            actor["name"] = sealed_name
            actor_json = _dumps(actor)
    fields = personal_fields(type(event.metadata)) if isinstance(event.metadata, BaseModel) else ()
    if fields and metadata_json:
        plain = json.loads(metadata_json)
        sealed = json.loads(metadata_json)
        for field in fields:
            value = _get(plain, field.path)
            if not isinstance(value, str):
                continue  # not given (None, or left out): nothing personal stored
            whose = _subject_of(event, plain, field.marker.subject, field.marker.kind, field.path)
            path = "metadata." + ".".join(field.path)
            _set(sealed, field.path, _seal(keys, row.workspace, row.uid, whose, path, value))
        metadata_json = _dumps(sealed)
    if actor_json is row.actor and metadata_json is row.metadata:
        return row
    return row._replace(actor=actor_json, metadata=metadata_json)


def _subject_of(event: Event, metadata: Any, subject: str, kind: str, field: tuple[str, ...]) -> str:
    if subject == "actor":
        if not event.actor.id:
            raise AuditValidationError(
                [
                    Problem(
                        "actor.id",
                        f"metadata.{'.'.join(field)} is personal data of the actor: give the actor an id "
                        "(its subject is user:<actor id>)",
                    )
                ]
            )
        return f"user:{event.actor.id}"
    value = _get(metadata, tuple(subject.split(".")))
    if isinstance(value, int | str) and not isinstance(value, bool) and str(value):
        return f"{kind}:{value}"
    raise AuditValidationError(
        [
            Problem(
                f"metadata.{subject}",
                f"names the data subject of metadata.{'.'.join(field)}: give it a non-empty id",
            )
        ]
    )


def _get(data: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def _set(data: Any, path: tuple[str, ...], value: str) -> None:
    for part in path[:-1]:
        data = data[part]
    data[path[-1]] = value


# -- reading ------------------------------------------------------------------------------------


def decode_sealed(row: Row, registry: Any, decode: Callable[[Row, Any], Event]) -> Event:
    """``decode(row)`` with every sealed value of ``row`` opened (or marked erased/unreadable)."""
    problems: list[str] = []
    actor, metadata = row.actor, row.metadata
    if MARK in actor:
        actor = _open_json(actor, row, "actor", problems)
    if metadata is not None and MARK in metadata:
        metadata = _open_json(metadata, row, "metadata", problems)
    event = decode(row._replace(actor=actor, metadata=metadata), registry)
    if problems:
        note = "; ".join(problems)
        # Frozen model: the codec sets read-side fields the same way.
        event.__dict__["schema_error"] = f"{event.schema_error}; {note}" if event.schema_error else note
    return event


def open_row(row: Row) -> Row:
    """``row`` with its sealed values opened, for copies that leave auditbird in the clear (log
    streams to a SIEM): plaintext while the subject's key exists, ``[erased]`` after, and
    ``[unreadable]`` when a value fails authentication. Rows with nothing sealed come back as
    they are."""
    if not holds_sealed(row):
        return row
    actor, metadata = row.actor, row.metadata
    problems: list[str] = []
    if MARK in (actor or ""):
        actor = _open_json(actor, row, "actor", problems)
    if metadata is not None and MARK in metadata:
        metadata = _open_json(metadata, row, "metadata", problems)
    return row._replace(actor=actor, metadata=metadata)


def _open_json(text: str, row: Row, root: str, problems: list[str]) -> str:
    try:
        data = json.loads(text)
    except ValueError:
        return text  # not JSON: the codec marks the row as it does any damaged column
    return _dumps(_open_value(data, row, root, problems))


def _open_value(value: Any, row: Row, path: str, problems: list[str]) -> Any:
    if isinstance(value, str):
        return _open(value, row, path, problems) if value.startswith(PREFIX) else value
    if isinstance(value, dict):
        return {k: _open_value(v, row, f"{path}.{k}", problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_open_value(v, row, path, problems) for v in value]
    return value


def _open(value: str, row: Row, path: str, problems: list[str]) -> str:
    kid, _, blob = value[len(PREFIX) :].partition(":")
    try:
        found = keyring_lookup(kid)
    except KeyStoreUnavailable as exc:
        problems.append(f"{path}: its key could not be read ({exc}); try again when the key store is back")
        return UNREADABLE
    if found is None:
        return ERASED
    workspace, cipher = found
    try:
        raw = base64.urlsafe_b64decode(blob + "=" * (-len(blob) % 4))
        if workspace != row.workspace or len(raw) < _NONCE + 16:
            raise InvalidTag
        return cipher.decrypt(raw[:_NONCE], raw[_NONCE:], _aad(row.workspace, row.uid, path)).decode()
    except (InvalidTag, ValueError):
        problems.append(
            f"{path}: its encrypted value fails authentication (changed, or copied from another "
            "event or field) and reads as [unreadable]; restore the row from a backup"
        )
        return UNREADABLE
