"""Run inside a Tinybird CLI venv (not imported by pytest): parse datafiles with Tinybird's own
parsers and print one JSON line per file: {"path", "ok", "error", "warnings"}.

    .cache/tb-venv/bin/python tests/plugins/tinybird_parse_script.py FILE...

Works with both the current CLI (PyPI ``tinybird``: ``tinybird.datafile.parse_*``) and the Classic
one (PyPI ``tinybird-cli``: ``tinybird.datafile_common.parse_*`` plus the schema and index parsers
``tb push`` runs before it sends anything).
"""

from __future__ import annotations

import json
import sys
import warnings as py_warnings
from typing import Any


def _current(path: str) -> list[str]:
    from tinybird.datafile.parse_datasource import parse_datasource
    from tinybird.datafile.parse_pipe import parse_pipe

    parse = parse_datasource if path.endswith(".datasource") else parse_pipe
    result = parse(path)
    found = [str(w) for w in (result.warnings or [])]
    found += [str(w) for w in (getattr(result.datafile, "warnings", None) or [])]
    return found


def _classic(path: str) -> list[str]:
    from tinybird.datafile_common import parse_datasource, parse_pipe
    from tinybird.sql import parse_table_structure

    if path.endswith(".datasource"):
        doc = parse_datasource(path)  # INDEXES are parsed here already
        parse_table_structure(doc.nodes[0]["schema"])  # what `tb push` does next
    else:
        doc = parse_pipe(path)
    return [str(w) for w in (doc.warnings or [])]


def check(path: str) -> dict[str, Any]:
    try:
        import tinybird.datafile.parse_pipe  # noqa: F401 - present only in the current CLI

        parse = _current
    except ImportError:
        parse = _classic
    out: dict[str, Any] = {"path": path, "ok": True, "error": None, "warnings": []}
    with py_warnings.catch_warnings(record=True) as caught:
        py_warnings.simplefilter("always")
        try:
            out["warnings"] = parse(path)
        except BaseException as exc:  # click.ClickException, SchemaSyntaxError, ValueError, SystemExit
            message = getattr(exc, "message", None) or str(exc)
            out.update(ok=False, error=f"{type(exc).__name__}: {message}")
    out["warnings"] += [str(w.message) for w in caught]
    return out


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(json.dumps(check(arg)), flush=True)
