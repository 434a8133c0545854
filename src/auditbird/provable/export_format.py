"""The lines of an offline export that are not events, and what makes a file no export at all.

Shared by the exact check (:mod:`.export`) and the fast one (:mod:`.export_verbatim`), so both
read an expired leaf's line the same way.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

__all__ = [
    "BOM",
    "EXPIRED_FORM",
    "MAX_LINE_BYTES",
    "ExportError",
    "expired_leaf",
    "expired_line",
    "refuse_repeated_keys",
    "too_deep",
]

MAX_LINE_BYTES = 4 * 1024 * 1024  # an exported event larger than this is not one of ours
EXPIRED_FORM = '{"expired":true,"index":N,"leaf_hash":"<base64 SHA-256>"}'
BOM = b"\xef\xbb\xbf"  # a UTF-8 byte order mark, as some editors put before the first line
_EXPIRED_KEYS = frozenset({"expired", "index", "leaf_hash"})


class ExportError(ValueError):
    """An export that is not NDJSON of stored events, or not the size the checkpoint says."""


class _RepeatedKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _RepeatedKey(key)
            seen.add(key)
    return out


def too_deep(number: int) -> ExportError:
    """The error for line ``number`` when a parser ran out of stack on it (``[`` x 100,000):
    the parsers give up after ~1,000 levels, in bounded time and memory, and no exported
    event nests that deep."""
    return ExportError(
        f"line {number} nests too deep (arrays or objects inside each other beyond what the "
        "JSON parser follows): not an exported event; pass the export auditbird checkpoint --export wrote"
    )


def refuse_repeated_keys(line: bytes, canonical: bytes, number: int) -> None:
    """:class:`ExportError` if ``line`` names a key twice in any object. The parsers keep the
    last value; a reader that keeps the first would see another event in the same line, so
    such a line verifies nothing (I-JSON, which RFC 8785 requires, forbids it). Only a line
    that is not already its canonical form (``canonical``, made from a parsed object, whose
    keys are unique) is parsed again: an untouched export costs nothing more."""
    if line.strip() == canonical:
        return
    try:
        json.loads(line, object_pairs_hook=_unique_keys)
    except _RepeatedKey as exc:
        raise ExportError(
            f"line {number} names the key {exc.key!r} more than once in an object: readers "
            "disagree on which value it holds, so it is not an exported event (re-export it)"
        ) from None
    except RecursionError:
        raise too_deep(number) from None
    except ValueError:  # already parsed once: cannot happen, and the caller's parse decides
        return


def expired_line(index: int, digest: bytes) -> bytes:
    return b'{"expired":true,"index":%d,"leaf_hash":"%s"}\n' % (index, base64.b64encode(digest))


def expired_leaf(event: dict[str, Any], number: int) -> tuple[int, bytes]:
    """``(index, leaf hash)`` of an expired-leaf line; :class:`ExportError` for anything else."""
    if (
        event.keys() != _EXPIRED_KEYS
        or event["expired"] is not True
        or type(event["index"]) is not int
        or type(event["leaf_hash"]) is not str
    ):
        raise ExportError(
            f"line {number} is not an exported event (a JSON object with a uid) nor an expired "
            f"leaf ({EXPIRED_FORM}): pass an export written by auditbird checkpoint --export"
        )
    try:
        digest = base64.b64decode(event["leaf_hash"], validate=True)
    except binascii.Error:
        digest = b""
    if len(digest) != 32:
        raise ExportError(f"line {number}: leaf_hash is not the base64 of a 32-byte SHA-256 hash")
    return event["index"], digest
