"""A stream into NDJSON files rotated by size: what a log shipper (Filebeat, Vector) tails.

``audit.ndjson`` is the file being written; when a batch would take it past ``max_bytes`` it
is renamed ``audit.ndjson.1`` (the older ones shift up to ``.keep``, the oldest is deleted)
and a new file starts. Every batch is fsynced before the stream's position moves past it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..row import Row, row_to_wire
from .sink import DeliveryError

__all__ = ["NdjsonFileSink"]


class NdjsonFileSink:
    def __init__(
        self, path: str | os.PathLike[str], *, max_bytes: int = 100 * 1024 * 1024, keep: int = 5
    ) -> None:
        if max_bytes < 1_024:
            raise ValueError("max_bytes: rotate at 1024 bytes or more")
        if not 1 <= keep <= 1_000:
            raise ValueError("keep: keep 1 to 1000 rotated files")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.keep = keep

    def deliver(self, rows: Sequence[Row]) -> None:
        data = "".join(row_to_wire(r) + "\n" for r in rows).encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            size = self.path.stat().st_size if self.path.exists() else 0
            if size and size + len(data) > self.max_bytes:
                self._rotate()
            with open(self.path, "ab") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:  # disk full, a directory removed: retried until fixed
            raise DeliveryError(f"cannot write {self.path}: {exc.strerror or exc}") from exc

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
