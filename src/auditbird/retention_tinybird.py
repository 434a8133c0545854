"""Retention on Tinybird: the ``audit_log`` datasource's TTL removes expired rows.

Opt-in, never on by default: the shipped ``audit_log.datasource`` has no TTL, because a TTL
deletes audit evidence silently, on Tinybird's schedule, with no event recording it; how long
to keep an audit trail is a legal decision (often years), so auditbird must not guess it.
``auditbird retention datafiles DIR 365d`` writes the shipped datafiles with
``ENGINE_TTL`` added, for ``tb deploy`` / ``tb push``; both Tinybird CLIs parse the result
(tests/test_retention_tinybird.py).

>>> ttl_expression("365d")
'toDateTime(intDiv(timestamp, 1000)) + toIntervalDay(365)'
"""

from __future__ import annotations

from pathlib import Path

from .retention import parse_period
from .tinybird.datafiles import SHIPPED, shipped_files

__all__ = ["ttl_expression", "datasource_with_ttl", "write_datafiles_with_ttl"]

_DATASOURCE = Path("datasources") / "audit_log.datasource"


def ttl_expression(period: str) -> str:
    """The ClickHouse TTL for ``period``: ``timestamp`` is milliseconds, a TTL needs a DateTime."""
    ms = parse_period(period)
    days, rest = divmod(ms, 86_400_000)
    interval = f"toIntervalDay({days})" if not rest else f"toIntervalHour({ms // 3_600_000})"
    return f"toDateTime(intDiv(timestamp, 1000)) + {interval}"


def datasource_with_ttl(text: str, period: str) -> str:
    """``audit_log.datasource`` text with ``ENGINE_TTL`` for ``period`` (replacing any)."""
    lines = [line for line in text.rstrip("\n").split("\n") if not line.startswith("ENGINE_TTL ")]
    return "\n".join(lines) + f'\nENGINE_TTL "{ttl_expression(period)}"\n'


def write_datafiles_with_ttl(dest: str | Path, period: str) -> list[Path]:
    """The shipped datafiles into ``dest``, ``audit_log``'s with a TTL of ``period``."""
    ttl = ttl_expression(period)  # a bad period fails before anything is written
    out = Path(dest)
    written = []
    for rel in shipped_files():
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        text = (SHIPPED / rel).read_text(encoding="utf-8")
        if rel == _DATASOURCE:
            text = datasource_with_ttl(text, period)
            assert ttl in text
        target.write_text(text, encoding="utf-8")
        written.append(target)
    return written
