"""A stream into NDJSON files rotated by size and by time: what a log shipper (Filebeat,
Vector) tails.

``audit.ndjson`` is the file being written; it is renamed ``audit.ndjson.1`` (the older ones
shift up to ``.keep``, the oldest is deleted) and a new file starts when a batch would take it
past ``max_bytes``, or, with ``rotate_every`` (seconds), when the file was last written in an
earlier period than now. Periods are aligned to the Unix epoch (``rotate_every=3600``: each
UTC hour), and "last written" is the file's modification time, so a runner restarted in a
later hour still rotates. Every batch is fsynced before the stream's position moves past it.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ..row import Row, row_to_wire
from .sink import DeliveryError

__all__ = ["NdjsonFileSink", "parse_every"]

_UNITS = {"s": 1, "m": 60, "h": 3_600, "d": 86_400}
_EVERY = re.compile(r"(\d+)([smhd])")


def parse_every(text: str) -> int:
    """``30s``, ``15m``, ``1h``, ``1d`` -> seconds (at least 1 s, at most 366 days)."""
    match = _EVERY.fullmatch(text.strip())
    seconds = int(match.group(1)) * _UNITS[match.group(2)] if match else 0
    if not 1 <= seconds <= 366 * 86_400:
        raise ValueError(f"rotate every {text!r}: use a number and s, m, h or d, e.g. 1h or 1d")
    return seconds


class NdjsonFileSink:
    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_bytes: int = 100 * 1024 * 1024,
        keep: int = 5,
        rotate_every: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_bytes < 1_024:
            raise ValueError("max_bytes: rotate at 1024 bytes or more")
        if not 1 <= keep <= 1_000:
            raise ValueError("keep: keep 1 to 1000 rotated files")
        if rotate_every is not None and not 1 <= rotate_every <= 366 * 86_400:
            raise ValueError("rotate_every: rotate every 1 second to 366 days")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.keep = keep
        self.rotate_every = rotate_every
        self.clock = clock

    def deliver(self, rows: Sequence[Row]) -> None:
        data = "".join(row_to_wire(r) + "\n" for r in rows).encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self._due(len(data)):
                self._rotate()
            with open(self.path, "ab") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:  # disk full, a directory removed: retried until fixed
            raise DeliveryError(f"cannot write {self.path}: {exc.strerror or exc}") from exc

    def _due(self, adding: int) -> bool:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return False
        if not st.st_size:
            return False
        if st.st_size + adding > self.max_bytes:
            return True
        every = self.rotate_every
        return every is not None and int(st.st_mtime // every) != int(self.clock() // every)

    def _rotate(self) -> None:
        oldest = self.path.with_name(f"{self.path.name}.{self.keep}")
        oldest.unlink(missing_ok=True)
        for n in range(self.keep - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{n + 1}"))
        os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))

    def close(self) -> None:
        pass
