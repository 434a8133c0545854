"""RFC 8785 (JCS) canonical JSON: the bytes each Merkle leaf hashes, at C speed where provably exact.

The tree canonicalises every appended event and ``verify --export`` every exported line, so
this is the per-event cost of provable history. Three tiers, each used only where its output
is the same as RFC 8785's:

1. ``msgspec`` (C) parses and re-encodes with sorted keys, ~2 µs an event. Exact when the
   value holds no float (a ``float_hook`` refuses them while parsing: JCS formats numbers as
   ECMAScript does), no integer beyond 2**53 and no character beyond the BMP (JCS sorts keys by
   UTF-16 code units, msgspec by code points; the orders differ only there). The last two are
   checked on the output bytes: a run of 16 digits anywhere, or a 4-byte UTF-8 sequence
   anywhere, sends the event to tier 2 (a false alarm costs speed only).
2. The standard library's parser and encoder, with hooks that refuse floats and big integers
   and check keys only, ~10 µs.
3. The ``rfc8785`` package (pure Python, ~90 µs) for everything else, and for its errors.

Escapes agree in all three: only the quote, the backslash and U+0000-U+001F, with the same
short forms and lower-case hex (property tests in ``tests/test_merkle_tree.py`` hold each tier
to the ``rfc8785`` package).
"""

from __future__ import annotations

import json
import re
from typing import Any

import msgspec
import rfc8785

__all__ = [
    "MAX_SAFE_INTEGER",
    "canonical_json",
    "canonical_json_text",
    "decode_canonical",
    "fragment",
    "parse_plain",
    "encode_plain",
    "encode_plain_many",
]

MAX_SAFE_INTEGER = 2**53 - 1  # I-JSON's exact integers; beyond them JCS formats as a double


class _NotPlain(Exception):
    """A value the fast encoders would not write as RFC 8785 does."""


def _refuse_float(_token: str) -> Any:
    raise _NotPlain


_FAST_DECODE = msgspec.json.Decoder(float_hook=_refuse_float).decode
_FAST_ENCODE = msgspec.json.Encoder(order="sorted").encode
# An integer of 16 digits or more may be beyond 2**53 (16 digits start at 10**15); a lead byte
# 0xF0-0xF4 starts a character beyond the BMP. Either anywhere (strings included) is enough.
# (translate + find is ~6x faster than a regular expression for the digits.)
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_SIXTEEN_DIGITS = b"0" * 16
_ASTRAL = re.compile(rb"[\xf0-\xf4]").search


def _fast_is_exact(out: bytes) -> bool:
    """Whether tier 1's output ``out`` is RFC 8785's (floats were refused while parsing)."""
    if _SIXTEEN_DIGITS in out.translate(_DIGITS_TO_ZERO):
        return False
    return out.isascii() or _ASTRAL(out) is None


def decode_canonical(text: str | bytes) -> tuple[Any, bytes]:
    """The parsed JSON document ``text`` and its RFC 8785 bytes. Raises ``ValueError`` for
    text that is not JSON (or not representable in I-JSON, as ``rfc8785`` says)."""
    try:
        value = _FAST_DECODE(text)
    except (_NotPlain, msgspec.MsgspecError, UnicodeError):  # a float, bad JSON, a lone surrogate: tier 2
        pass
    else:
        out = _FAST_ENCODE(value)
        if _fast_is_exact(out):
            return value, out
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    return _decode_exact(text)


def canonical_json_text(text: str | bytes) -> bytes:
    """RFC 8785 bytes of the JSON document ``text`` (a row's wire JSON, an exported line):
    :func:`decode_canonical` without the value (tier 1 inlined: this runs once per append)."""
    try:
        out = _FAST_ENCODE(_FAST_DECODE(text))
    except (_NotPlain, msgspec.MsgspecError, UnicodeError):
        pass
    else:
        if _fast_is_exact(out):
            return out
    return _decode_exact(text.decode("utf-8") if isinstance(text, bytes) else text)[1]


def fragment(text: str) -> msgspec.Raw:
    """The RFC 8785 bytes of the JSON document ``text``, to splice as they are into a value
    :func:`encode_plain` writes (a member whose text repeats is canonicalised once)."""
    return msgspec.Raw(canonical_json_text(text))


def parse_plain(text: str) -> Any:
    """Tier 1's parse of ``text`` for :func:`encode_plain`. Raises ``ValueError`` where only
    the exact tiers can say (a float, text that is not JSON): use :func:`canonical_json_text`."""
    try:
        return _FAST_DECODE(text)
    except (_NotPlain, msgspec.MsgspecError, UnicodeError) as exc:
        raise ValueError("not plain JSON") from exc


def encode_plain(value: Any) -> bytes | None:
    """RFC 8785 bytes of ``value`` (strings, integers, None, dicts and lists of them, what
    :func:`parse_plain` returned, :func:`fragment` values) by tier 1, or None where tier 1's
    output may differ (then use the exact tiers). Raises ``ValueError`` for a lone surrogate."""
    out = _FAST_ENCODE(value)
    return out if _fast_is_exact(out) else None


def encode_plain_many(values: list[Any]) -> list[bytes] | None:
    """:func:`encode_plain` of each value, checked once over all of them (a batch's leaves):
    the check looks for runs of digits and for bytes of characters beyond the BMP, and JSON
    objects and arrays begin and end with brackets, so the joined bytes pass exactly when each
    value's do. None when any may differ from RFC 8785."""
    out = [_FAST_ENCODE(value) for value in values]
    return out if _fast_is_exact(b"".join(out)) else None


def _no_float(_token: str) -> Any:
    raise _NotPlain


def _safe_int(token: str) -> int:
    value = int(token)
    if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        return value
    raise _NotPlain


def _bmp_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = "".join(k for k, _ in pairs)
    if keys.isascii() or not keys or max(keys) < "\U00010000":
        return dict(pairs)
    raise _NotPlain


_LOADS_ASCII = json.JSONDecoder(parse_float=_no_float, parse_int=_safe_int, parse_constant=_no_float).decode
_LOADS_OTHER = json.JSONDecoder(
    parse_float=_no_float, parse_int=_safe_int, parse_constant=_no_float, object_pairs_hook=_bmp_keys
).decode
_SORTED_DUMPS = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False
).encode


def _decode_exact(text: str) -> tuple[Any, bytes]:
    """Tiers 2 and 3: checked while the standard library's C parser reads (hooks see only
    numbers, and objects' keys when the text is not ASCII)."""
    try:
        # ASCII text may still spell a key beyond the BMP as a \u surrogate pair: only text
        # with no \u escape skips the key check.
        plain_ascii = text.isascii() and "\\u" not in text
        value = (_LOADS_ASCII if plain_ascii else _LOADS_OTHER)(text)
        return value, _SORTED_DUMPS(value).encode("utf-8")
    except (_NotPlain, UnicodeEncodeError):
        value = json.loads(text)
        return value, rfc8785.dumps(value)


def _plain(value: Any) -> bool:
    """Whether ``json.dumps(sort_keys=True)`` writes ``value`` exactly as RFC 8785 does: no
    floats, integers within 2**53, and keys without characters beyond the BMP."""
    stack = [value]
    while stack:  # iterative, by exact type
        item = stack.pop()
        kind = type(item)
        if kind is str or kind is bool or item is None:
            continue
        if kind is int:
            if not -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER:
                return False
        elif kind is dict:
            keys = "".join(item)  # raises TypeError for a non-string key: not JSON, so not plain
            if not (keys.isascii() or max(keys) < "\U00010000"):
                return False
            stack.extend(item.values())
        elif kind is list:
            stack.extend(item)
        else:
            return False
    return True


def canonical_json(value: Any) -> bytes:
    """RFC 8785 (JCS) bytes of a Python value: the standard library's encoder where its output
    is provably the same (:func:`_plain`), else the ``rfc8785`` package."""
    try:
        plain = _plain(value)
    except TypeError:  # a key that is not a string
        plain = False
    if plain:
        try:
            return _SORTED_DUMPS(value).encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: rfc8785 says what is wrong
            pass
    return rfc8785.dumps(value)
