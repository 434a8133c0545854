"""Copy an OpenStatus workspace's audit rows (the seed's ``audit_log__v0``) into an auditbird store.

>>> report = migrate(Tinybird(token=OLD, datasource="audit_log__v0"), open_store(NEW_URL),
...                  state_path=Path("migrate.json"))
>>> report.ok, report.copied

The source is read through the Query API (``/v0/sql``, typed template parameters) in pages
ordered by ``(timestamp, id, action)``; a page always holds every row of its last key, so pages
never split a set of copies. Every row gets the uid :func:`~auditbird.stores.tinybird_seed.seed_uid`
derives from its content, so copies of a row become one event, and running the migration again
stores nothing new: before a page is written, the destination is asked which of its uids it
already holds, and only the others are sent. After the write the destination is read again, and
a row still missing is reported with the reason (quarantine, ...), never dropped silently.

The position (the last key done) and the tallies are kept in a JSON state file, replaced
atomically after every page the destination acknowledged: after a crash the same command
resumes at the first page not done. At the end the source is counted again and the destination
is counted by its uids derived from seed rows; both must agree with what was copied.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from pydantic import ValidationError

from .._errors import AuditError
from ..event import Event
from ..query import MAX_LIMIT, Query
from ..stores._tinybird_http import Protocol, RetryPolicy, run_sync
from ..stores._tinybird_seed_sql import query_api
from ..stores.base import Row
from ..stores.tinybird_seed import SEED_DATASOURCE, is_seed_datasource, row_from_seed
from ..validation import problems_from_pydantic
from .config import Tinybird
from .migrate_state import Failure, MigrationError, MigrationReport, MigrationState, locked

__all__ = [
    "migrate",
    "migrate_urls",
    "source_from_url",
    "MigrationError",
    "MigrationReport",
    "MigrationState",
    "Failure",
]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
Key = tuple[int, str, str]  # (timestamp, id, action): the order pages are read in


# -- the source: the seed's datasource through the Query API --------------------------------


class SeedSource:
    """Pages of a seed datasource, in ``(timestamp, id, action)`` order, through ``/v0/sql``."""

    def __init__(self, tb: Tinybird, client: httpx.Client, retry: RetryPolicy | None = None) -> None:
        if not _IDENTIFIER.match(tb.datasource):
            raise MigrationError(f"{tb.datasource!r} is not a Tinybird datasource name")
        self.tb = tb
        self.client = client
        self.protocol = Protocol(tb.host or "", tb.token, tb.datasource, retry=retry or RetryPolicy())

    def _sql(self, sql: str, params: dict[str, str]) -> list[dict[str, Any]]:
        what = f"a read of {self.tb.datasource} (Query API)"
        data: list[dict[str, Any]] = run_sync(self.client, query_api(self.protocol, sql, params, what))
        return data

    def count(self) -> int:
        rows = self._sql(f"SELECT count() AS n FROM {self.tb.datasource} FORMAT JSON", {})  # noqa: S608
        return int(rows[0]["n"])

    def page(self, after: Key | None, rows: int) -> list[dict[str, Any]]:
        """Up to ``rows`` rows after ``after``, plus the rest of the last key's rows, if any."""
        # Strings travel with an "x" in front so that no parameter is ever empty (an empty
        # parameter may read as undefined); substring(.., 2) takes it off in SQL.
        cols = "id, action, actor, targets, metadata, timestamp, version"
        sql = f"%\nSELECT {cols} FROM {self.tb.datasource}\n"  # noqa: S608 - a checked identifier
        params = {"page_rows": str(rows)}
        if after is not None:
            sql += (
                "WHERE (timestamp, id, action) > ({{Int64(after_ts)}}, substring({{String(after_id)}}, 2), "
                "substring({{String(after_action)}}, 2))\n"
            )
            params |= {"after_ts": str(after[0]), "after_id": "x" + after[1], "after_action": "x" + after[2]}
        sql += "ORDER BY timestamp, id, action\nLIMIT {{Int32(page_rows)}}\nFORMAT JSON"
        items = self._sql(sql, params)
        if len(items) < rows:
            return items
        last = _key(items[-1])
        group_sql = (
            f"%\nSELECT {cols} FROM {self.tb.datasource}\n"  # noqa: S608
            "WHERE timestamp = {{Int64(ts)}} AND id = substring({{String(key_id)}}, 2) "
            "AND action = substring({{String(key_action)}}, 2)\nFORMAT JSON"
        )
        group = self._sql(
            group_sql, {"ts": str(last[0]), "key_id": "x" + last[1], "key_action": "x" + last[2]}
        )
        return [item for item in items if _key(item) != last] + group


def _key(item: dict[str, Any]) -> Key:
    return int(item["timestamp"]), str(item["id"]), str(item["action"])


# -- checks ---------------------------------------------------------------------------------


def _problem(row: Row) -> str | None:
    """Why ``row`` cannot be an auditbird event, or None: every bad field, by name."""
    fields: dict[str, Any] = {"uid": row.uid, "workspace": row.workspace, "id": row.id, "action": row.action}
    for name, text in (("actor", row.actor), ("targets", row.targets), ("metadata", row.metadata)):
        if text is None:
            continue
        try:
            fields[name] = json.loads(text)
        except ValueError:
            return f"{name} is not JSON: {text[:80]!r}"
    fields |= {"timestamp": row.timestamp, "version": row.version}
    try:
        Event.model_validate(fields)
    except ValidationError as exc:
        return "; ".join(str(p) for p in problems_from_pydantic(exc))
    return None


def _derived(uid: str) -> bool:
    """Whether ``uid`` is a UUIDv5, the kind seed_uid derives (auditbird's own are UUIDv7)."""
    return len(uid) == 36 and uid[14] == "5"


def _destination_uids(store: Any, workspace: str, since: int, until: int) -> set[str]:
    """Every uid the destination holds in ``[since, until)`` (keyset pages of MAX_LIMIT)."""
    uids: set[str] = set()
    after: tuple[int, str] | None = None
    while True:
        q = Query(workspace=workspace, since=since, until=until, order="asc", limit=MAX_LIMIT, after=after)
        rows = store.query(q)
        uids.update(r.uid for r in rows)
        if len(rows) < MAX_LIMIT:
            return uids
        after = (rows[-1].timestamp, rows[-1].uid)


def _count_derived(store: Any, workspace: str, since: int, until: int) -> int:
    """How many events in ``[since, until)`` have a uid derived from a seed row: the final check
    (auditbird's own events, UUIDv7, in the same range are not counted)."""
    n = 0
    after: tuple[int, str] | None = None
    while True:
        q = Query(workspace=workspace, since=since, until=until, order="asc", limit=MAX_LIMIT, after=after)
        rows = store.query(q)
        n += sum(1 for r in rows if _derived(r.uid))
        if len(rows) < MAX_LIMIT:
            return n
        after = (rows[-1].timestamp, rows[-1].uid)


# -- the migration --------------------------------------------------------------------------


def describe(tb: Tinybird) -> str:
    """Where a datasource is, without its token (for the state file and the report)."""
    return f"{tb.host}/{tb.datasource}"


def migrate(
    source: Tinybird,
    destination: Any,
    *,
    state_path: str | os.PathLike[str],
    destination_name: str,
    workspace: str = "",
    page_rows: int = 1_000,
    progress: Callable[[int, int], None] | None = None,
) -> MigrationReport:
    """Copy every row of ``source`` (a datasource with the seed's columns) into ``destination``
    (any store: ``append`` and ``query``), resuming from ``state_path`` if it exists.

    ``destination_name`` identifies the destination in the state file (no token in it);
    ``progress(rows_done, rows_total)`` is called after every page.
    """
    if not 1 <= page_rows <= MAX_LIMIT:
        raise MigrationError(f"page_rows must be between 1 and {MAX_LIMIT}, not {page_rows}")
    path = Path(state_path)
    with locked(path):
        return _run(source, destination, path, destination_name, workspace, page_rows, progress)


def _run(
    source: Tinybird,
    destination: Any,
    path: Path,
    destination_name: str,
    workspace: str,
    page_rows: int,
    progress: Callable[[int, int], None] | None,
) -> MigrationReport:
    state = _open_state(path, describe(source), destination_name, workspace)
    copied_now = present_now = 0
    with httpx.Client(limits=httpx.Limits(max_keepalive_connections=2)) as client:
        reader = SeedSource(source, client)
        total = reader.count()
        if progress:
            progress(state.rows_read, total)
        while True:
            after = (int(state.after[0]), str(state.after[1]), str(state.after[2])) if state.after else None
            items = reader.page(after, page_rows)
            if not items:
                break
            page = _copy_page(items, destination, workspace)
            if state.first_timestamp is None:
                state.first_timestamp = int(items[0]["timestamp"])
            state.rows_read += len(items)
            state.events += page.events
            state.copied += page.copied
            state.present += page.present
            state.failed += page.failed
            state.after = list(_key(items[-1]))
            state.save(path)  # only now: the page's writes were acknowledged
            copied_now += page.copied
            present_now += page.present
            if progress:
                progress(state.rows_read, max(total, state.rows_read))
        source_rows = reader.count()
    dest_events = 0
    if state.first_timestamp is not None and state.after is not None:
        dest_events = _count_derived(destination, workspace, state.first_timestamp, int(state.after[0]) + 1)
    return MigrationReport(state, source_rows, dest_events, copied_now, present_now)


def _open_state(path: Path, source: str, destination: str, workspace: str) -> MigrationState:
    if not path.exists():
        state = MigrationState(source, destination, workspace)
        state.save(path)
        return state
    state = MigrationState.load(path)
    if (state.source, state.destination, state.workspace) != (source, destination, workspace):
        raise MigrationError(
            f"{path} belongs to the migration from {state.source} to {state.destination} "
            f"(workspace {state.workspace!r}); pass another --state for this one"
        )
    return state


@dataclass
class _Page:
    events: int
    copied: int
    present: int
    failed: list[Failure]


def _copy_page(items: list[dict[str, Any]], destination: Any, workspace: str) -> _Page:
    """Write the events of ``items`` the destination does not hold yet; check they arrived."""
    events: dict[str, Row] = {}
    failed: dict[str, Failure] = {}
    for item in items:
        try:
            row = row_from_seed(item)._replace(workspace=workspace)
        except (KeyError, TypeError, ValueError) as exc:
            failed[json.dumps(item, sort_keys=True)] = Failure(item, f"unreadable row: {exc!r}")
            continue
        if row.uid in events or row.uid in failed:  # a copy of a row already seen
            continue
        problem = _problem(row)
        if problem is None:
            events[row.uid] = row
        else:
            failed[row.uid] = Failure({**item, "uid": row.uid}, problem)
    since, until = int(items[0]["timestamp"]), int(items[-1]["timestamp"]) + 1
    held = _destination_uids(destination, workspace, since, until) if events else set()
    new = [row for uid, row in events.items() if uid not in held]
    if new:
        why = "written, but not readable from the destination afterwards"
        try:
            destination.append(new)
        except AuditError as exc:
            # Nothing known to have arrived: stop, resume later (QuarantinedRows says `delivered`).
            if not getattr(exc, "delivered", False):
                raise
            why = str(exc)  # QuarantinedRows: delivered, some of it to quarantine
        now_held = _destination_uids(destination, workspace, since, until)
        for row in new:
            if row.uid not in now_held:
                failed[row.uid] = Failure({**row_to_item(row), "uid": row.uid}, why)
    copied = sum(1 for row in new if row.uid not in failed)
    return _Page(len(events.keys() | failed.keys()), copied, len(events) - len(new), list(failed.values()))


def row_to_item(row: Row) -> dict[str, Any]:
    """A row as the seed's datasource holds it (for reporting a row that was not copied)."""
    return {
        "id": row.id,
        "action": row.action,
        "actor": row.actor,
        "targets": row.targets,
        "metadata": row.metadata,
        "timestamp": row.timestamp,
        "version": row.version,
    }


# -- from URLs (the command line) -----------------------------------------------------------


def source_from_url(url: str) -> Tinybird:
    """A Tinybird URL as for the store; the datasource is the seed's unless ``?datasource=`` says."""
    from ..stores.tinybird import parse_url

    tb, _options = parse_url(url)
    if "datasource" not in parse_qs(urlsplit(url).query):
        tb = Tinybird(token=tb.token, host=tb.host, datasource=SEED_DATASOURCE)
    return tb


def default_state_path(source: str, destination: str, workspace: str) -> Path:
    """``./auditbird-migrate-<hash>.json``: one per source, destination and workspace."""
    digest = hashlib.sha256(f"{source}|{destination}|{workspace}".encode()).hexdigest()[:12]
    return Path.cwd() / f"auditbird-migrate-{digest}.json"


def migrate_urls(
    from_url: str,
    to_url: str,
    *,
    workspace: str = "",
    state_path: str | os.PathLike[str] | None = None,
    page_rows: int = 1_000,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[MigrationReport, Path]:
    """:func:`migrate` from a Tinybird URL to any store URL; returns the report and the state file."""
    from ..stores import open_store, redact_url

    source = source_from_url(from_url)
    destination = open_store(to_url)
    try:
        tb = getattr(destination, "tb", None)
        if tb is not None and is_seed_datasource(tb.datasource):
            raise MigrationError(
                f"--to names {tb.datasource}, the seed's datasource: copy into auditbird's datasource "
                "(leave ?datasource= out, or name one pushed from `auditbird tinybird datafiles`)"
            )
        name = redact_url(to_url) + (f"/{tb.datasource}" if tb is not None else "")
        path = (
            Path(state_path)
            if state_path is not None
            else default_state_path(describe(source), name, workspace)
        )
        report = migrate(
            source,
            destination,
            state_path=path,
            destination_name=name,
            workspace=workspace,
            page_rows=page_rows,
            progress=progress,
        )
    finally:
        destination.close()
    return report, path
