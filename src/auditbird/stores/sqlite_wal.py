"""Reading a SQLite WAL file frame by frame, to find commits SQLite would silently skip.

SQLite replays a WAL up to the first frame whose salt or checksum is wrong and ignores the
rest *by design* (that is how it tells a torn, unacknowledged write from a good one). So a
damaged frame in the middle of the WAL silently drops every commit after it, acknowledged or
not. This module verifies the checksums itself (https://sqlite.org/fileformat2.html#walformat)
and reports commit frames of the current WAL generation that lie beyond the first bad frame:
those were acknowledged writes that the next open would lose.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

__all__ = ["wal_problems"]

_MAGIC = {0x377F0682: "<", 0x377F0683: ">"}  # the low bit says the checksums' byte order
_HEADER = 32
_FRAME_HEADER = 24


def _checksum(data: bytes, order: str, s0: int, s1: int) -> tuple[int, int]:
    words = struct.unpack(f"{order}{len(data) // 4}I", data)
    for i in range(0, len(words), 2):
        s0 = (s0 + words[i] + s1) & 0xFFFFFFFF
        s1 = (s1 + words[i + 1] + s0) & 0xFFFFFFFF
    return s0, s1


def wal_problems(path: Path) -> list[str]:
    """What is wrong with the WAL at ``path`` that SQLite would not report ([] when fine)."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return []
    with f:
        header = f.read(_HEADER)
        if not header:
            return []  # an empty WAL: nothing to replay
        if len(header) < _HEADER:
            return [f"{path}: the WAL header is cut short ({len(header)} bytes)"]
        magic, _version, page_size, _seq, salt1, salt2, c1, c2 = struct.unpack(">8I", header)
        order = _MAGIC.get(magic)
        if order is None or _checksum(header[:24], order, 0, 0) != (c1, c2):
            lost = _count_commits(f, page_size, salt1, salt2)
            return [
                f"{path}: the WAL header is damaged, so SQLite ignores the whole WAL"
                + (f": {lost} commit(s) in it are lost" if lost else "")
            ]
        s0, s1 = c1, c2
        index = 0
        while True:
            frame = f.read(_FRAME_HEADER + page_size)
            if len(frame) < _FRAME_HEADER + page_size:
                return []  # the end (a short tail is an unfinished write: never acknowledged)
            index += 1
            _page, _commit, fsalt1, fsalt2, fc1, fc2 = struct.unpack(">6I", frame[:_FRAME_HEADER])
            if (fsalt1, fsalt2) != (salt1, salt2):
                # A frame of an earlier WAL generation (the WAL is reused, not truncated):
                # the log ends here, unless frames of this generation follow it.
                return _lost(path, index, _count_commits(f, page_size, salt1, salt2))
            t0, t1 = _checksum(frame[:8], order, s0, s1)
            t0, t1 = _checksum(frame[_FRAME_HEADER:], order, t0, t1)
            if (t0, t1) != (fc1, fc2):
                # Only commits *after* the bad frame count: a torn last commit is a crash during
                # an unfinished (never acknowledged) write, which SQLite rightly drops.
                return _lost(path, index, _count_commits(f, page_size, salt1, salt2))
            s0, s1 = t0, t1


def _count_commits(f: BinaryIO, page_size: int, salt1: int, salt2: int) -> int:
    """Commit frames of this WAL generation from the file position onwards."""
    count = 0
    if page_size < 512 or page_size > 65536:
        return 0
    while True:
        frame = f.read(_FRAME_HEADER + page_size)
        if len(frame) < _FRAME_HEADER + page_size:
            return count
        _page, commit, fsalt1, fsalt2 = struct.unpack(">4I", frame[:16])
        if commit and (fsalt1, fsalt2) == (salt1, salt2):
            count += 1


def _lost(path: Path, index: int, lost: int) -> list[str]:
    if not lost:
        return []  # an unfinished write after the last commit: never acknowledged, nothing lost
    return [
        f"{path}: WAL frame {index} is damaged; SQLite stops reading the WAL there, so {lost} "
        "later commit(s) in it are lost when the log is next opened. Keep a copy of the file and "
        "its -wal before opening it again, and restore from a backup."
    ]
