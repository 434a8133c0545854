"""The migration's state file and report: where to resume, what was copied, what was not."""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .._errors import AuditError

__all__ = ["MigrationError", "Failure", "MigrationState", "MigrationReport", "STATE_VERSION", "locked"]

STATE_VERSION = 1


class MigrationError(AuditError, ValueError):
    """The migration cannot start as asked (a state file of another migration, a bad option)."""


@dataclass
class Failure:
    """A source row that was not copied, and why."""

    row: dict[str, Any]
    reason: str


@dataclass
class MigrationState:
    """What the state file holds: where to resume, and the tallies so far (no token)."""

    source: str
    destination: str
    workspace: str
    after: list[Any] | None = None  # the last Key done
    first_timestamp: int | None = None  # of the first row read: the migrated range starts there
    rows_read: int = 0  # source rows read
    events: int = 0  # distinct events among them (copies of a row are one event)
    copied: int = 0  # events written to the destination
    present: int = 0  # events the destination already held
    failed: list[Failure] = field(default_factory=list)
    version: int = STATE_VERSION

    def save(self, path: Path) -> None:
        """Replace ``path`` atomically and durably: a crash leaves the old state or the new one."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(asdict(self), out, ensure_ascii=False, separators=(",", ":"))
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    @classmethod
    def load(cls, path: Path) -> MigrationState:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("version") != STATE_VERSION:
                raise ValueError(f"state version {data.get('version')!r}, expected {STATE_VERSION}")
            data["failed"] = [Failure(**f) for f in data.get("failed", [])]
            return cls(**data)
        except (OSError, ValueError, TypeError) as exc:
            raise MigrationError(
                f"{path}: not a migration state file ({exc}); pass another --state, or delete it to "
                "start over (safe: rows already copied are not copied again)"
            ) from exc


@dataclass
class MigrationReport:
    state: MigrationState
    source_rows: int  # counted in the source at the end
    destination_events: int  # events in the destination whose uid is derived from a seed row
    copied_now: int = 0
    present_now: int = 0

    @property
    def failed_events(self) -> int:
        return len({f.row.get("uid") or json.dumps(f.row, sort_keys=True) for f in self.state.failed})

    @property
    def counts_agree(self) -> bool:
        s = self.state
        return self.source_rows == s.rows_read and self.destination_events == s.events - self.failed_events

    @property
    def ok(self) -> bool:
        return self.counts_agree and not self.state.failed

    def summary(self, max_failures: int = 100) -> list[str]:
        """The report for people: counts, the check, and the rows not copied (the first
        ``max_failures`` of them; the state file lists every one)."""
        s = self.state
        lines = [
            f"source {s.source}: {self.source_rows} rows now, {s.rows_read} read "
            f"({s.events} events; {s.rows_read - s.events} rows were copies of another row)",
            f"destination {s.destination} (workspace {s.workspace!r}): {self.copied_now} events copied "
            f"by this run, {self.present_now} already there; {self.destination_events} events from seed "
            f"rows in all",
        ]
        if self.counts_agree:
            lines.append(
                f"check: OK, {self.destination_events} + {self.failed_events} not copied = {s.events} events"
            )
        else:
            lines.append(
                f"check: MISMATCH, source {self.source_rows} rows vs {s.rows_read} read, destination "
                f"{self.destination_events} events vs {s.events - self.failed_events} expected: the source "
                "changed during the migration, or the destination holds events from another one. Run it "
                "again with a new --state: a full pass that copies only what is missing"
            )
        for f in s.failed[:max_failures]:
            row = f.row
            lines.append(
                f"not copied: id={row.get('id')!r} action={row.get('action')!r} "
                f"timestamp={row.get('timestamp')!r}: {f.reason}"
            )
        if len(s.failed) > max_failures:
            lines.append(f"... and {len(s.failed) - max_failures} more rows not copied")
        if s.failed:
            lines.append(
                f"{len(s.failed)} rows were not copied; each is in the state file with its reason "
                "(`failed`): fix them and publish them again"
            )
        return lines


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold ``<state>.lock`` for the whole run: two runs sharing a state file would each resume
    from the same page and overwrite each other's tallies. The lock goes with the process (even
    on kill -9)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a+b") as lock:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise MigrationError(
                f"another migration is running with the state file {path}; wait for it to end"
            ) from None
        yield
