"""chDB, embedded ClickHouse, behind one lock: tables from the datafiles, inserts, queries.

chDB is not safe to call from several threads at once, so every call goes through
:meth:`Engine.run` (or, for the rows of the Events API, a streaming insert) under a lock. A
persistent session under ``--data DIR`` keeps the data across restarts; without one the data
lives in a temporary folder.
"""

from __future__ import annotations

import re
import tempfile
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..datafiles import DatafileError, Datasource, Pipe
from .ingest import QUARANTINE_SUFFIX, Quarantined, RowChecker, Split, quarantine_table_sql
from .template import render

__all__ = ["Engine", "QueryError", "IngestResult", "check_select", "FORMATS"]

# Output formats /v0/sql accepts (as Tinybird's Query API does), with their content types.
FORMATS: dict[str, str] = {
    "JSON": "application/json",
    "JSONCompact": "application/json",
    "JSONEachRow": "application/x-ndjson",
    "JSONStrings": "application/json",
    "CSV": "text/csv",
    "CSVWithNames": "text/csv",
    "TSV": "text/tab-separated-values",
    "TSVWithNames": "text/tab-separated-values",
    "TabSeparated": "text/tab-separated-values",
    "TabSeparatedWithNames": "text/tab-separated-values",
    "PrettyCompact": "text/plain",
    "Parquet": "application/octet-stream",
}


class QueryError(ValueError):
    """A query ClickHouse (or the read-only check) refused: a 400 for the caller."""


class IngestResult:
    __slots__ = ("successful_rows", "quarantined_rows", "errors")

    def __init__(self, successful_rows: int, quarantined_rows: int, errors: list[str]) -> None:
        self.successful_rows = successful_rows
        self.quarantined_rows = quarantined_rows
        self.errors = errors


# -- SQL shape checks (string literals, quoted names and comments are masked first) --------

_MASK = re.compile(
    r"\$([A-Za-z0-9_]*)\$.*?\$\1\$|'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.)*\"|`(?:[^`\\]|\\.)*`"
    r"|--[^\n]*|#[^\n]*|/\*.*?\*/",
    re.S,
)
_FORMAT = re.compile(r"\bFORMAT\s+([A-Za-z]+)\s*;?\s*$", re.I)
# Nothing a SELECT could use to touch files, processes or the network from the server.
# Prefixes, so every variant (`icebergLocal`, `hdfsCluster`, `azureBlobStorageCluster`, ...) is caught.
_FORBIDDEN = re.compile(
    r"\bINTO\s+OUTFILE\b|\b(file|url|s3|hdfs|remote|mysql|postgresql|executable|python|cluster|"
    r"azure|gcs|oss|cosn|iceberg|delta|hudi|paimon|jdbc|odbc|sqlite|mongo|redis|input|dictionary|"
    r"merge|view|loop|deltaLake|arrowFlight|ytsaurus|fuzz|generateRandom)\w*\s*\(",
    re.I,
)


def _masked(sql: str) -> str:
    """The SQL with every literal, quoted name and comment replaced by spaces (same length)."""
    return _MASK.sub(lambda m: " " * len(m.group(0)), sql)


def check_select(sql: str) -> tuple[str, str | None]:
    """(query without its FORMAT clause, the format or None). Only one SELECT is allowed."""
    masked = _masked(sql)
    if "'" in masked or '"' in masked or "`" in masked or "/*" in masked:
        raise QueryError("unterminated string literal, quoted name or comment")
    end = len(sql.rstrip())
    if masked[:end].endswith(";"):  # a real semicolon: literals and comments are masked
        end = len(sql[: end - 1].rstrip())
    body = masked[:end]
    if ";" in body:
        raise QueryError("only one statement is allowed")
    words = body.split()
    if not words or words[0].upper() not in {"SELECT", "WITH"} and not body.lstrip().startswith("("):
        raise QueryError("only SELECT queries are allowed")
    forbidden = _FORBIDDEN.search(body)
    if forbidden:
        raise QueryError(f"{forbidden.group(0).rstrip('(').strip()} is not allowed here")
    fmt = None
    match = _FORMAT.search(body)
    if match:
        names = {f.lower(): f for f in FORMATS}
        fmt = names.get(match.group(1).lower())
        if fmt is None:
            raise QueryError(f"format {match.group(1)} is not supported; use one of {', '.join(FORMATS)}")
        return sql[: match.start()].rstrip(), fmt
    return sql[:end], None


class Engine:
    def __init__(self, data_dir: str | Path | None) -> None:
        import chdb.session  # deferred: chDB is the `local` extra

        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="auditbird-tb-")
            data_dir = self._tmp.name
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._session: Any = chdb.session.Session(str(self.data_dir))
        self.run("SET output_format_json_quote_64bit_integers = 0")
        self.run("SET output_format_json_quote_denormals = 0")
        self.datasources: dict[str, Datasource] = {}
        self.checkers: dict[str, RowChecker] = {}
        self.pipes: dict[str, Pipe] = {}

    def run(self, sql: str, fmt: str = "CSV") -> bytes:
        with self._lock:
            try:
                result = self._session.query(sql, fmt)
            except Exception as exc:  # chdb raises its own error types
                raise QueryError(_clean(str(exc))) from None
        return bytes(result.bytes()) if result is not None else b""

    def close(self) -> None:
        with self._lock:
            self._session.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    # -- datafiles ------------------------------------------------------------------------

    def load(self, datasources: dict[str, Datasource], pipes: dict[str, Pipe]) -> None:
        """Create the datasources' tables (kept if they exist with the same columns).

        The datafiles were held to Tinybird's rules when they were parsed; what only ClickHouse
        can tell (an unknown engine setting, a bad expression) is refused here, with its message.
        """
        for ds in datasources.values():
            try:
                self.run(ds.create_table_sql())
            except QueryError as exc:
                raise DatafileError(f"{ds.name}.datasource: ClickHouse refused the table: {exc}") from None
            self._check_columns(ds)
            self.run(quarantine_table_sql(ds))
            self.datasources[ds.name] = ds
            self.checkers[ds.name] = RowChecker(ds)
        self.pipes.update(pipes)

    def _check_columns(self, ds: Datasource) -> None:
        """A table kept in ``--data`` from other datafiles cannot take this datafile's rows."""
        name = ds.name.replace("'", "")
        stored = self.run(
            f"SELECT name FROM system.columns WHERE database = currentDatabase() AND table = '{name}' "  # noqa: S608
            "ORDER BY position",
            "TSV",
        ).decode()
        have = [c for c in stored.splitlines() if c]
        want = [c.name for c in ds.columns]
        if have != want:
            raise DatafileError(
                f"{ds.name}.datasource: the data folder holds table {ds.name} with other columns "
                f"({', '.join(have)}) than the datafile ({', '.join(want)}); start with another --data "
                "folder, or copy the rows over with `auditbird tinybird migrate`"
            )

    # -- the Events API -------------------------------------------------------------------

    def ingest(self, name: str, text: str, body: bytes | None = None) -> IngestResult:
        """NDJSON ``text`` (``body``: the same as UTF-8 bytes, if at hand) into ``name``; rows that
        do not fit go to its quarantine. A batch whose rows all fit costs one INSERT."""
        checker = self.checkers[name]
        good, bad, errors = self._ingest_checked(name, checker.split(text), body)
        if bad:
            now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
            rows = checker.quarantine_rows(bad, str(uuid.uuid4()), now)
            # Streamed as data, never parsed out of one SQL string: that cost GBs for a MB of bad rows.
            if not self._insert(f"INSERT INTO `{name}{QUARANTINE_SUFFIX}`", None, rows):
                raise QueryError(f"the quarantine of {name} refused {len(rows)} rows")
        return IngestResult(good, len(bad), errors)

    def _ingest_checked(
        self, name: str, split: Split, body: bytes | None
    ) -> tuple[int, list[Quarantined], list[str]]:
        """Insert the good rows of ``split`` (``body``: its text as bytes): (rows ingested, rows to
        quarantine, errors). A batch ClickHouse refuses is retried row by row, as always."""
        checker = self.checkers[name]
        bad = split.bad
        errors = [e for q in bad for e in q.errors]
        good = split.good
        if good:
            columns = ", ".join(f"`{c}`" for c in checker.columns)
            # Rows with the same sorting key are collapsed by merges (and FINAL) anyway: doing it
            # for each insert as well only costs time.
            insert = f"INSERT INTO `{name}` ({columns}) SETTINGS optimize_on_insert = 0"
            ok = self._insert(insert, body if split.as_came and body is not None else None, good)
            if not ok and any(split.raw):
                checker.recheck(split)  # the lines as the full check writes them, as always
                good = split.good
                ok = self._insert(insert, None, good)
            if not ok:
                # ClickHouse refused the batch: find the rows it refuses and quarantine those.
                head = insert + " FORMAT JSONEachRow\n"
                kept = []
                for line in good:
                    try:
                        self.run(head + line)
                        kept.append(line)
                    except QueryError as exc:
                        bad.append(_from_clickhouse(line, str(exc)))
                        errors.append(str(exc))
                good = kept
        return len(good), bad, errors

    def _insert(self, insert: str, payload: bytes | None, lines: list[str]) -> bool:
        """One INSERT of JSONEachRow (``payload``, else ``lines``); False if ClickHouse refused it.

        The data is handed to chDB as bytes (a streaming insert), not parsed out of a SQL string.
        """
        if payload is None:
            try:
                payload = "\n".join(lines).encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate (a \ud800 escape): no row of it is UTF-8
                return False
        send_insert = getattr(self._session, "send_insert", None)
        with self._lock:
            if send_insert is None:  # an older chDB: the data goes after FORMAT in the query
                try:
                    self._session.query(insert + " FORMAT JSONEachRow\n" + payload.decode("utf-8"), "CSV")
                except Exception:
                    return False
                return True
            try:
                with send_insert(insert, "JSONEachRow") as stream:
                    stream.append(payload)
                    stream.finish()
            except Exception:  # chDB raises RuntimeError; leaving the block cancels the insert
                return False
        return True

    # -- the Pipes and Query APIs ---------------------------------------------------------

    def pipe_sql(self, name: str, params: dict[str, str]) -> str:
        """The pipe's endpoint SQL, rendered; earlier nodes become CTEs it can read from."""
        pipe = self.pipes[name]
        endpoint = pipe.endpoint
        ctes = []
        for node in pipe.nodes:
            if node is endpoint:
                break
            ctes.append(f"`{node.name}` AS ({render(node.sql, params)})")
        sql = render(endpoint.sql, params)
        if ctes:
            if re.match(r"^\s*WITH\b", _masked(sql), re.I):
                sql = "WITH " + ", ".join(ctes) + ", " + re.sub(r"^\s*WITH\b", "", sql, count=1, flags=re.I)
            else:
                sql = "WITH " + ", ".join(ctes) + "\n" + sql
        return sql

    def select(self, sql: str, fmt: str = "JSON") -> bytes:
        body, _ = check_select(sql)
        return self.run(body, fmt)


def _clean(message: str) -> str:
    first = message.strip().splitlines()[0] if message.strip() else "query failed"
    return re.sub(r"^Code: \d+\. DB::Exception: ", "", first)


def _from_clickhouse(line: str, error: str) -> Quarantined:
    return Quarantined(line, ["__line"], [f"ClickHouse refused the row: {error}"], {})
