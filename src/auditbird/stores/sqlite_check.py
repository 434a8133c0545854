"""``auditbird check``: is a SQLite log intact? SQLite's own checks plus auditbird's invariants.

What this can and cannot find is written down in docs/storage-integrity.md. In short: SQLite
finds damage to its page structure (``integrity_check``), auditbird finds broken invariants of
the log (positions gap-free, uids unique per workspace, JSON columns that parse, target rows
that point at events), and the WAL is read frame by frame so a damaged frame followed by
commits SQLite will silently skip is reported. Nothing finds a changed byte inside a value
that still parses: SQLite pages carry no checksums.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

from .sqlite_wal import wal_problems

__all__ = ["CheckReport", "check_file", "check_url"]

_LIMIT = 5  # examples per problem: enough to find the rows, bounded output


@dataclass
class CheckReport:
    """What ``auditbird check`` found; ``problems`` is empty when the log is intact."""

    path: str
    events: int = 0
    problems: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)  # what was checked and passed

    @property
    def ok(self) -> bool:
        return not self.problems


def check_url(url: str, *, quick: bool = False) -> CheckReport:
    """Check the log a ``sqlite:///`` URL names (see :func:`check_file`)."""
    parts = urlsplit(url)
    if parts.scheme != "sqlite" or parts.netloc:
        raise ValueError(f"{url!r}: `check` works on SQLite logs, e.g. --store sqlite:///audit.db")
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    if not path:
        raise ValueError(f"{url!r} names no file; use e.g. sqlite:///./auditbird.db")
    return check_file(path, quick=quick)


def check_file(path: str, *, quick: bool = False) -> CheckReport:
    """Check the SQLite log at ``path`` without writing to it (read-only; a damaged file is
    never "repaired" by the check). ``quick`` uses ``quick_check`` (no index cross-checks:
    ~10x faster on a large file) instead of ``integrity_check``."""
    report = CheckReport(path)
    p = Path(path)
    if not p.is_file():
        report.problems.append(f"{path} does not exist (or is not a file)")
        return report
    if p.stat().st_size == 0:
        report.problems.append(f"{path} is empty (0 bytes): the log was truncated")
        return report
    # Before SQLite opens the file: opening replays the WAL and skips a damaged tail silently.
    report.problems.extend(wal_problems(Path(f"{path}-wal")))
    report.checks.append("WAL frames and checksums")
    try:
        conn = sqlite3.connect(f"file:{quote(str(p.resolve()))}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        report.problems.append(f"SQLite cannot open it: {exc}")
        return report
    try:
        _check_sqlite(conn, report, quick)
        if report.ok or _has_tables(conn):
            _check_invariants(conn, report)
    except sqlite3.Error as exc:
        report.problems.append(f"SQLite stopped the check: {exc}")
    finally:
        conn.close()
    return report


def _check_sqlite(conn: sqlite3.Connection, report: CheckReport, quick: bool) -> None:
    pragma = "quick_check" if quick else "integrity_check"
    try:
        found = [str(r[0]) for r in conn.execute(f"PRAGMA {pragma}(100)").fetchall()]
    except sqlite3.DatabaseError as exc:
        # Damage the check itself trips over (a page it must walk to go on) is its finding too.
        found = [str(exc)]
    if found != ["ok"]:
        report.problems.extend(f"SQLite {pragma}: {line}" for line in found)
    else:
        report.checks.append(f"SQLite {pragma}")


def _has_tables(conn: sqlite3.Connection) -> bool:
    try:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
    except sqlite3.Error:
        return False
    return {"audit_log", "audit_target"} <= names


def _check_invariants(conn: sqlite3.Connection, report: CheckReport) -> None:
    if not _has_tables(conn):
        report.problems.append("no audit_log table: this is not an auditbird log")
        return
    problems = report.problems

    count, low, high = conn.execute(
        "SELECT count(*), coalesce(min(position), 0), coalesce(max(position), 0) FROM audit_log"
    ).fetchone()
    report.events = int(count)
    if count and (low != 1 or high != count):
        gaps = [
            int(r[0])
            for r in conn.execute(
                "SELECT a.position + 1 FROM audit_log AS a WHERE a.position < ? AND NOT EXISTS "
                "(SELECT 1 FROM audit_log AS b WHERE b.position = a.position + 1) ORDER BY 1 LIMIT ?",
                (high, _LIMIT),
            )
        ]
        if low != 1:
            gaps.insert(0, 1)
        problems.append(
            f"positions are not gap-free: {count} events at positions {low}..{high}; missing from "
            f"position(s) {', '.join(map(str, gaps[:_LIMIT]))} (events were deleted, or the file lost pages)"
        )
    else:
        report.checks.append(f"positions 1..{high} gap-free")

    dupes = conn.execute(
        "SELECT workspace, uid, count(*) FROM audit_log GROUP BY workspace, uid HAVING count(*) > 1 LIMIT ?",
        (_LIMIT,),
    ).fetchall()
    if dupes:
        problems.append(
            "uids stored more than once in a workspace: "
            + ", ".join(f"{uid!r} x{n} in {ws!r}" for ws, uid, n in dupes)
        )
    else:
        report.checks.append("uids unique per workspace")

    bad_json = conn.execute(
        "SELECT position, uid FROM audit_log WHERE NOT (json_valid(actor) AND json_type(actor) = 'object' "
        "AND json_valid(targets) AND json_type(targets) = 'array' "
        "AND (metadata IS NULL OR json_valid(metadata))) ORDER BY position LIMIT ?",
        (_LIMIT,),
    ).fetchall()
    if bad_json:
        problems.append(
            "events whose actor, targets or metadata column is not the JSON it should be: "
            + ", ".join(f"position {pos} (uid {uid!r})" for pos, uid in bad_json)
        )
    else:
        report.checks.append("JSON columns parse")

    (orphans,) = conn.execute(
        "SELECT count(*) FROM audit_target AS t WHERE NOT EXISTS "
        "(SELECT 1 FROM audit_log AS a WHERE a.position = t.position AND a.uid = t.uid)"
    ).fetchone()
    if orphans:
        problems.append(f"{orphans} target row(s) point at no event (audit_target does not match audit_log)")
    else:
        report.checks.append("target rows match their events")
