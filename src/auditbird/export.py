"""Events as CSV and NDJSON lines: one definition for the CLI, the service and the viewer."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator

from .event import Event

__all__ = ["CSV_COLUMNS", "csv_lines", "ndjson_lines", "neutralise_cell"]

CSV_COLUMNS = (
    "uid",
    "workspace",
    "timestamp",
    "time",
    "id",
    "action",
    "actor_id",
    "actor_name",
    "targets",
    "version",
    "metadata",
)
# A cell starting with one of these is run as a formula by spreadsheets (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "|", "%")


def neutralise_cell(value: str) -> str:
    """Prefix a quote to a cell a spreadsheet would evaluate (OWASP's CSV-injection advice)."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def _iso(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def csv_lines(events: Iterable[Event], *, header: bool = True, neutralise: bool = True) -> Iterator[str]:
    """Yield CSV text line by line (streamable); formula-like cells are neutralised."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    if header:
        writer.writerow(CSV_COLUMNS)
        yield flush()
    for event in events:
        data = event.to_dict()
        cells = [
            event.uid,
            event.workspace,
            str(event.timestamp),
            _iso(event.timestamp),
            event.id,
            event.action,
            event.actor.id,
            event.actor.name,
            json.dumps(data["targets"], separators=(",", ":"), ensure_ascii=False),
            str(event.version),
            json.dumps(data["metadata"], separators=(",", ":"), ensure_ascii=False)
            if data["metadata"] is not None
            else "",
        ]
        writer.writerow([neutralise_cell(c) for c in cells] if neutralise else cells)
        yield flush()


def ndjson_lines(events: Iterable[Event]) -> Iterator[str]:
    for event in events:
        yield json.dumps(event.to_dict(), separators=(",", ":"), ensure_ascii=False) + "\n"
