"""The outbox relay: ship committed events from a SQLite file to another store.

    relay = Relay("sqlite:///app.db", "tinybird://...")       # or any store URL / object
    relay.run(follow=True)                                     # until stopped

At least once, in commit order (so in order within every stream), resumable: after each
batch the destination has acknowledged, the relay stores the last shipped position durably
(a row in the source file keyed by the relay's name, or a file). A crash between the two
leaves one batch *in doubt*; on restart that batch is shipped again, and duplicates are
avoided by ``uid`` — SQLite destinations skip known uids themselves, and for other stores
the relay first asks which uids of the in-doubt batch already arrived.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, cast, runtime_checkable

from .event import now_ms
from .provable.tinybird_tree import publisher_for
from .query import Query
from .stores import open_store, redact_url
from .stores.base import Row
from .stores.capabilities import CommitWaiter, supports
from .stores.postgres import PostgresStore
from .stores.postgres_follow import PostgresPositions
from .stores.sqlite import SQLiteStore

__all__ = ["Relay", "PositionTable", "PositionFile", "UidLookup", "default_name"]


@runtime_checkable
class UidLookup(Protocol):
    """A destination that tells which of many uids it holds in one request (the Tinybird store)."""

    def stored_uids(self, workspace: str, uids: Sequence[str]) -> set[str]: ...


class PositionTable:
    """Relay positions in a table of the source file: ``auditbird_relay_position``."""

    def __init__(self, path: str, name: str) -> None:
        self.name = name
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        self._conn.execute("PRAGMA busy_timeout = 30000")
        self._conn.execute("PRAGMA synchronous = FULL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS auditbird_relay_position ("
            "name TEXT PRIMARY KEY, position INTEGER NOT NULL, updated_at INTEGER NOT NULL)"
        )

    def load(self) -> int:
        row = self._conn.execute(
            "SELECT position FROM auditbird_relay_position WHERE name = ?", (self.name,)
        ).fetchone()
        return int(row[0]) if row else 0

    def save(self, position: int) -> None:
        self._conn.execute(
            "INSERT INTO auditbird_relay_position (name, position, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at",
            (self.name, position, now_ms()),
        )

    def close(self) -> None:
        self._conn.close()


class PositionFile:
    """A relay position in a small file, replaced atomically (write, fsync, rename)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def load(self) -> int:
        try:
            text = self.path.read_text().strip()
        except FileNotFoundError:
            return 0
        return int(text or 0)

    def save(self, position: int) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w") as fh:
            fh.write(f"{position}\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def close(self) -> None:
        pass


def _open_source(url: str) -> SQLiteStore | PostgresStore:
    if url.split(":", 1)[0].lower() in ("postgresql", "postgres"):
        return PostgresStore.from_url(url)  # its position lives in the same database
    return SQLiteStore.from_url(url)


def _same_store(source: Any, destination: Any) -> bool:
    if isinstance(source, SQLiteStore) and isinstance(destination, SQLiteStore):
        return os.path.realpath(destination.path) == os.path.realpath(source.path)
    if isinstance(source, PostgresStore) and isinstance(destination, PostgresStore):
        return bool(source.where == destination.where)
    return False


def default_name(url: str) -> str:
    """The relay's name for a destination URL: without credentials or options."""
    return redact_url(url)


class Relay:
    """Ships events committed to a SQLite file into another store, batch by batch."""

    def __init__(
        self,
        source: str | SQLiteStore | PostgresStore,
        destination: str | Any,
        *,
        name: str | None = None,
        position_file: str | os.PathLike[str] | None = None,
        batch: int = 500,
        tree: bool = True,
    ) -> None:
        """``tree``: where the destination is Tinybird and the source keeps a Merkle tree, also
        publish its leaves and signed checkpoints there (:mod:`auditbird.provable.tinybird_tree`)."""
        if batch < 1:
            raise ValueError("batch must be at least 1")
        self.source = _open_source(source) if isinstance(source, str) else source
        if not isinstance(self.source, SQLiteStore | PostgresStore):
            raise ValueError(
                "the relay reads from a SQLite file or a PostgreSQL database: --from sqlite:///app.db"
            )
        if isinstance(destination, str):
            self.name = name or default_name(destination)
            self.destination = open_store(destination)
        else:
            self.name = name or f"{type(destination).__name__}"
            self.destination = destination
        if _same_store(self.source, self.destination):
            self.destination.close()
            raise ValueError("the relay's destination is its source; name another store")
        self.batch = batch
        self.tree = publisher_for(self.source, self.destination) if tree else None
        self.positions: PositionTable | PositionFile | PostgresPositions = (
            PositionFile(position_file)
            if position_file is not None
            else PositionTable(self.source.path, self.name)
            if isinstance(self.source, SQLiteStore)
            else self.source.relay_positions(self.name)
        )
        self.position = self.positions.load()
        # Only the first batch after a (re)start can be in doubt; later ones were never sent.
        self._in_doubt = True

    def pending(self) -> int:
        """Events committed to the source and not yet shipped."""
        return max(0, self.source.last_position() - self.position)

    def step(self) -> int:
        """Ship the next batch (if any); returns how many events it held."""
        rows = self.source.read_committed(self.position, self.batch)
        if not rows:
            return 0
        to_send = self._not_yet_there(rows) if self._in_doubt else rows
        try:
            if to_send:
                self.destination.append([r._replace(position=None) for r in to_send])
            if self.tree is not None:  # the whole batch: an in-doubt one may lack its leaves
                self.tree.publish(rows)
        except BaseException:
            # Part of the batch may have arrived: the next step asks the destination first.
            self._in_doubt = True
            raise
        last = rows[-1].position
        assert last is not None
        self.positions.save(last)
        self.position = last
        self._in_doubt = False
        return len(rows)

    def run(
        self,
        *,
        follow: bool = False,
        poll_interval: float = 0.5,
        stop: threading.Event | None = None,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> int:
        """Ship until caught up (or, with ``follow``, until ``stop`` is set); returns the count.

        ``on_batch(shipped, position)`` is called after every batch (progress displays)."""
        total = 0
        token: int | None = None  # a source woken by commits (PostgreSQL): what it last counted
        while stop is None or not stop.is_set():
            shipped = self.step()
            total += shipped
            if shipped and on_batch is not None:
                on_batch(shipped, self.position)
            if shipped:
                continue
            if not follow:
                break
            if supports(self.source, CommitWaiter):  # LISTEN/NOTIFY: no query while idle
                token = cast(CommitWaiter, self.source).wait_for_commit(token, None, stop)
            elif stop is not None:
                stop.wait(poll_interval)
            else:
                time.sleep(poll_interval)
        return total

    def _not_yet_there(self, rows: list[Row]) -> list[Row]:
        if isinstance(self.destination, SQLiteStore | PostgresStore):
            return rows  # it skips known uids itself, in the same transaction
        if isinstance(self.destination, UidLookup):
            # One request per workspace of the batch (a batch rarely spans two), not one per row:
            # a relay restarted during an outage must not need hundreds of round trips to start.
            by_workspace: dict[str, list[str]] = {}
            for row in rows:
                by_workspace.setdefault(row.workspace, []).append(row.uid)
            known = {
                (ws, uid)
                for ws, uids in by_workspace.items()
                for uid in self.destination.stored_uids(ws, uids)
            }
            return [row for row in rows if (row.workspace, row.uid) not in known]
        fresh = []
        for row in rows:
            found = self.destination.query(Query(workspace=row.workspace, uid=row.uid, limit=1))
            if not found:
                fresh.append(row)
        return fresh

    def close(self) -> None:
        self.positions.close()
        self.source.close()
        self.destination.close()

    def __enter__(self) -> Relay:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
