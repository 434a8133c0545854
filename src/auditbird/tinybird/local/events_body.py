"""An Events API body, read a bounded chunk at a time: gunzip as it goes, split NDJSON at newlines.

Memory per request is bounded whatever the compression ratio: the gzip stream is inflated a slice
at a time and handed on in chunks of whole lines (at most :data:`CHUNK_BYTES` or
:data:`CHUNK_LINES`), and the total it may inflate to is capped (:data:`MAX_DECODED_BYTES`, a 413
beyond it). A 1 KB gzip of bad rows once expanded into one INSERT string of GBs.

NDJSON is split only where NDJSON is: at ``\\n`` (a ``\\r`` before it is dropped, so CRLF bodies
read too). ``str.splitlines()`` also splits at U+0085, U+2028, U+2029 and more, all valid inside a
JSON string, and so cut acknowledged rows in two.

A body whose first character is ``[`` is a JSON array (the Events API takes "JSON and NDJSON"):
each element is one row, read whole up to :data:`MAX_ARRAY_BYTES`.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator

__all__ = [
    "BodyError",
    "Chunk",
    "chunks",
    "MAX_REQUEST_BYTES",
    "MAX_DECODED_BYTES",
    "MAX_ARRAY_BYTES",
    "CHUNK_BYTES",
    "CHUNK_LINES",
    "MAX_LINE_BYTES",
]

MAX_REQUEST_BYTES = 10 * 1024 * 1024  # Tinybird's Events API limit per request (free plans)
MAX_DECODED_BYTES = 100 * 1024 * 1024  # what a body may inflate to (Tinybird's paid-plan request limit)
MAX_ARRAY_BYTES = 10 * 1024 * 1024  # a JSON array is parsed whole: NDJSON for anything bigger
CHUNK_BYTES = 4 * 1024 * 1024
MAX_LINE_BYTES = 10 * 1024 * 1024  # one row: a longer line is refused, not buffered without end
CHUNK_LINES = 20_000
_SLICE = 256 * 1024  # inflated per step


class BodyError(ValueError):
    """A body the Events API refuses: ``status`` is 400 or 413."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Chunk:
    """Whole NDJSON lines: ``text`` and the same as UTF-8 ``data``."""

    __slots__ = ("text", "data")

    def __init__(self, data: bytes) -> None:
        self.data = data
        try:
            self.text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BodyError(400, f"The body is not UTF-8 NDJSON (byte {exc.start} of a chunk)") from None


def _inflated(body: bytes, gzipped: bool) -> Iterator[bytes]:
    if not gzipped:
        yield body
        return
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    total = 0
    pending = body
    while True:
        try:
            out = decoder.decompress(pending, _SLICE)
        except zlib.error as exc:
            raise BodyError(400, f"Content-Encoding is gzip, but the body is not gzip: {exc}") from None
        total += len(out)
        if total > MAX_DECODED_BYTES:
            raise BodyError(
                413, f"The gzip body inflates beyond {MAX_DECODED_BYTES} bytes; send smaller batches"
            )
        if out:
            yield out
        pending = decoder.unconsumed_tail
        if not pending and (decoder.eof or not out):
            break
    if not decoder.eof:
        raise BodyError(400, "Content-Encoding is gzip, but the gzip stream is truncated")


def _lines_in_chunks(pieces: Iterator[bytes]) -> Iterator[Chunk]:
    """Whole lines, at most CHUNK_BYTES (unless one line is longer) or CHUNK_LINES a chunk."""
    buffer = bytearray()
    for piece in pieces:
        buffer += piece
        while len(buffer) >= CHUNK_BYTES or buffer.count(b"\n") >= CHUNK_LINES:
            cut = _cut(buffer)
            if cut <= 0:
                if len(buffer) > MAX_LINE_BYTES:
                    raise BodyError(413, f"A line is longer than {MAX_LINE_BYTES} bytes: one row per line")
                break  # one long line: wait for its end
            yield Chunk(_normalise(bytes(buffer[:cut])))
            del buffer[:cut]
    if buffer.strip():
        yield Chunk(_normalise(bytes(buffer)))


def _cut(buffer: bytearray) -> int:
    """Where to cut ``buffer``: after the newline that ends the last line fitting the limits."""
    limit = min(len(buffer), CHUNK_BYTES)
    end = 0
    for _ in range(CHUNK_LINES):
        nl = buffer.find(b"\n", end, limit)
        if nl < 0:
            break
        end = nl + 1
    if end == 0:  # no newline within CHUNK_BYTES: the first line is longer; cut after it
        nl = buffer.find(b"\n")
        return nl + 1 if nl >= 0 else 0
    return end


def _normalise(data: bytes) -> bytes:
    """CRLF -> LF; nothing else (a lone CR inside a line stays, for the row check to judge)."""
    return data.replace(b"\r\n", b"\n") if b"\r\n" in data else data


def _array_rows(pieces: Iterator[bytes]) -> Iterator[Chunk]:
    data = bytearray()
    for piece in pieces:
        data += piece
        if len(data) > MAX_ARRAY_BYTES:
            raise BodyError(
                413, f"A JSON array body is read whole, so at most {MAX_ARRAY_BYTES} bytes; send NDJSON"
            )
    try:
        rows = json.loads(bytes(data))
    except ValueError as exc:
        raise BodyError(400, f"The body starts with '[' but is not a JSON array: {exc}") from None
    del data
    if not isinstance(rows, list):
        raise BodyError(400, "The body starts with '[' but is not a JSON array")
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    for start in range(0, len(rows), CHUNK_LINES):
        # A non-object element becomes a line the row check quarantines, as a bad NDJSON line would be.
        text = "\n".join(dumps(r) for r in rows[start : start + CHUNK_LINES]) + "\n"
        yield Chunk(text.encode("utf-8"))


def chunks(body: bytes, *, gzipped: bool) -> Iterator[Chunk]:
    """The rows of ``body``, a chunk of whole NDJSON lines at a time. Raises :class:`BodyError`."""
    pieces = _inflated(body, gzipped)
    first = next(pieces, b"")
    head = first.lstrip()
    while not head:
        nxt = next(pieces, None)
        if nxt is None:
            return
        first, head = nxt, nxt.lstrip()

    def again() -> Iterator[bytes]:
        yield first
        yield from pieces

    if head.startswith(b"["):
        yield from _array_rows(again())
    else:
        yield from _lines_in_chunks(again())
