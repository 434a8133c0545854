"""Printing events: tables for people, JSON/NDJSON/CSV for machines.

A table goes to a terminal as a rich table; piped (stdout not a terminal) it is tab-separated
text, one row per line with every cell whole, so ``| grep``, ``| cut -f3`` and ``| sort`` work.
Tabs and newlines inside a cell become spaces there.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from enum import StrEnum

from rich.console import Console
from rich.table import Table

from ..event import Event
from ..export import csv_lines, ndjson_lines


class Format(StrEnum):
    table = "table"
    json = "json"
    ndjson = "ndjson"
    csv = "csv"


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def print_events(events: Iterable[Event], fmt: Format, *, title: str | None = None, raw: bool = False) -> int:
    """Print events in ``fmt``; returns how many were printed."""
    count = 0
    out = sys.stdout
    if fmt is Format.ndjson:
        for count, line in enumerate(ndjson_lines(events), 1):  # noqa: B007 - counted
            out.write(line)
    elif fmt is Format.csv:
        # Formula-like cells neutralised, as the service's export does; `raw` keeps them exact.
        for count, line in enumerate(csv_lines(events, neutralise=not raw)):  # noqa: B007 - counted
            out.write(line)
    elif fmt is Format.json:
        items = [e.to_dict() for e in events]
        count = len(items)
        out.write(json.dumps(items, indent=2, ensure_ascii=False) + "\n")
    else:
        rows = (_row(e) for e in events)
        count = print_table(EVENT_COLUMNS, rows, title=title)
    out.flush()
    return count


EVENT_COLUMNS = ("time (UTC)", "id", "action", "actor", "targets", "metadata")


def _row(e: Event) -> tuple[str, ...]:
    # From to_dict(), which never raises: a damaged row (an actor or targets that no longer fit
    # the event model) is shown as stored instead of ending the listing.
    data = e.to_dict()
    metadata = json.dumps(data["metadata"], ensure_ascii=False) if data.get("metadata") else ""
    return (
        _when(e.timestamp),
        e.id,
        e.action,
        _actor(data.get("actor")),
        _targets(data.get("targets")),
        metadata,
    )


def _actor(actor: object) -> str:
    if not isinstance(actor, dict):
        return json.dumps(actor, ensure_ascii=False)
    name, uid = str(actor.get("name", "")), str(actor.get("id", ""))
    return name + (f" ({uid})" if uid else "")


def _targets(targets: object) -> str:
    if not isinstance(targets, list):
        return json.dumps(targets, ensure_ascii=False)
    cells = []
    for t in targets:
        if isinstance(t, dict):
            cells.append(f"{t.get('type', t.get('name', ''))}:{t.get('id', '')}")
        else:
            cells.append(json.dumps(t, ensure_ascii=False))
    return ", ".join(cells)


def _cell(value: str) -> str:
    return value.replace("\t", " ").replace("\r", " ").replace("\n", " ")


def print_table(columns: Sequence[str], rows: Iterable[Sequence[str]], *, title: str | None = None) -> int:
    """A table for people on a terminal; tab-separated lines (header first) in a pipe."""
    out = sys.stdout
    count = 0
    if not out.isatty():
        out.write("\t".join(columns) + "\n")
        for count, row in enumerate(rows, 1):  # noqa: B007 - counted
            out.write("\t".join(_cell(c) for c in row) + "\n")
        out.flush()
        return count
    table = Table(title=title, show_lines=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        count += 1
        table.add_row(*row)
    Console().print(table)
    return count
