"""Printing events: tables for people, JSON/NDJSON/CSV for machines."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
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
        table = Table(title=title, show_lines=False)
        for column in ("time (UTC)", "subject", "action", "actor", "targets", "metadata"):
            table.add_column(column, overflow="fold")
        for e in events:
            count += 1
            data = e.to_dict()
            targets = ", ".join(f"{t.kind}:{t.id}" for t in e.targets)
            metadata = json.dumps(data["metadata"], ensure_ascii=False) if data["metadata"] else ""
            actor = e.actor.name + (f" ({e.actor.id})" if e.actor.id else "")
            table.add_row(_when(e.timestamp), e.id, e.action, actor, targets, metadata)
        Console().print(table)
    out.flush()
    return count
