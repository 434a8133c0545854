"""Events as CSV and NDJSON lines: one definition for the CLI, the service and the viewer."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator

from .event import Event

__all__ = ["CSV_COLUMNS", "csv_cell", "csv_lines", "ndjson_lines", "neutralise_cell"]

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
# A cell starting with one of these is run as a formula by spreadsheets (CSV injection). Calc
# and Excel skip leading whitespace (space, tab, CR, LF) before looking, so the check does too.
_FORMULA_START = frozenset("=+-@|%\t\r\n")
# Cells made only of these characters go out as they are; every other cell is quoted (an
# allowlist: Python's csv module quoted only for its own line terminator, "\n" here, so a lone CR
# went out unquoted and Calc started a new row there, the rest of the cell becoming the next
# row's first cell -- a live formula).
_PLAIN = re.compile(r"[A-Za-z0-9 _.:/@+=-]*")


def neutralise_cell(value: str) -> str:
    """Prefix a quote to a cell a spreadsheet would evaluate (OWASP's CSV-injection advice),
    also when the formula comes after leading whitespace, a tab, a CR or a LF."""
    if value[:1] in _FORMULA_START or value.lstrip()[:1] in _FORMULA_START:
        return "'" + value
    return value


def csv_cell(value: str) -> str:
    """One CSV cell (RFC 4180): quoted unless made of plain characters only, so a separator, a
    quote or any kind of line break (CR, LF, U+2028, ...) never leaves its cell."""
    if _PLAIN.fullmatch(value):
        return value
    return '"' + value.replace('"', '""') + '"'


def _iso(ms: object) -> str:
    from datetime import UTC, datetime

    if not isinstance(ms, int) or isinstance(ms, bool):
        return ""  # a damaged row: the raw value is in the `timestamp` cell
    try:
        return (
            datetime.fromtimestamp(ms / 1000, tz=UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z")
        )
    except (OverflowError, OSError, ValueError):
        return ""


def csv_lines(events: Iterable[Event], *, header: bool = True, neutralise: bool = True) -> Iterator[str]:
    """Yield CSV text line by line (streamable, LF line ends); formula-like cells are neutralised
    unless ``neutralise=False``. Cells with a line break are quoted either way."""
    if header:
        yield ",".join(CSV_COLUMNS) + "\n"
    for event in events:
        cells = _cells(event)
        if neutralise:
            cells = [neutralise_cell(c) for c in cells]
        yield ",".join(csv_cell(c) for c in cells) + "\n"


def _cells(event: Event) -> list[str]:
    data = event.to_dict()  # never raises, also for a row that no longer fits the event model
    actor = data["actor"] if isinstance(data["actor"], dict) else {}
    return [
        str(data["uid"]),
        str(data["workspace"]),
        str(data["timestamp"]),
        _iso(data["timestamp"]),
        str(data["id"]),
        str(data["action"]),
        str(actor.get("id", "")),
        str(actor.get("name", "")),
        _json(data["targets"]),
        str(data["version"]),
        _json(data["metadata"]) if data["metadata"] is not None else "",
    ]


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def ndjson_lines(events: Iterable[Event]) -> Iterator[str]:
    for event in events:
        yield json.dumps(event.to_dict(), separators=(",", ":"), ensure_ascii=False) + "\n"
