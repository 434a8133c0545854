"""What Tinybird refuses in a datafile, with Tinybird's own messages.

The local server must never pass a datafile the real service would reject, so every rule here
is one that Tinybird's own parsers enforce (the current CLI, PyPI ``tinybird``, and the Classic
one, ``tinybird-cli``), and every message is theirs: tests/test_tinybird_datafile_rules.py runs
both real parsers and this module over the same bad files and compares the messages.

Rules are allowlists: directives, engines and engine options Tinybird knows; anything else is
refused. Parameters named like a column, or declared twice, are accepted by both real parsers,
so they are accepted here too (auditbird's own pipes avoid them; a test holds them to that).
"""

from __future__ import annotations

import re

__all__ = [
    "DATASOURCE_DIRECTIVES",
    "PIPE_DIRECTIVES",
    "ENGINES",
    "column_problem",
    "directive_problem",
    "engine_problems",
    "parameter_problem",
]

# Directives a .datasource may hold (the current CLI's list; connector settings included so a
# project with them still loads: the local server ignores them).
DATASOURCE_DIRECTIVES = frozenset(
    {
        "DESCRIPTION",
        "SCHEMA",
        "INDEXES",
        "TOKEN",
        "TAGS",
        "VERSION",
        "SHARED_WITH",
        "FORWARD_QUERY",
        "INCLUDE",
        "ENGINE",
        "ENGINE_SORTING_KEY",
        "ENGINE_PARTITION_KEY",
        "ENGINE_PRIMARY_KEY",
        "ENGINE_SAMPLING_KEY",
        "ENGINE_TTL",
        "ENGINE_VER",
        "ENGINE_SIGN",
        "ENGINE_VERSION",
        "ENGINE_IS_DELETED",
        "ENGINE_SETTINGS",
        "ENGINE_COLUMNS",
        "KAFKA_CONNECTION_NAME",
        "KAFKA_TOPIC",
        "KAFKA_GROUP_ID",
        "KAFKA_AUTO_OFFSET_RESET",
        "KAFKA_STORE_RAW_VALUE",
        "KAFKA_STORE_HEADERS",
        "IMPORT_CONNECTION_NAME",
        "IMPORT_BUCKET_URI",
        "IMPORT_SCHEDULE",
        "IMPORT_FROM_TIMESTAMP",
    }
)
PIPE_DIRECTIVES = frozenset(
    {"DESCRIPTION", "NODE", "SQL", "TYPE", "TOKEN", "TAGS", "VERSION", "INCLUDE", "CACHE", "DATASOURCE"}
)
# The engines Tinybird creates, as its CLIs spell them in their error message.
ENGINES = (
    "MergeTree",
    "ReplacingMergeTree",
    "SummingMergeTree",
    "AggregatingMergeTree",
    "CollapsingMergeTree",
    "VersionedCollapsingMergeTree",
    "Null",
)

_SETTINGS_HINT = (
    "SETTINGS option is not allowed, use ENGINE_SETTINGS instead. See "
    "https://www.tinybird.co/docs/cli/datafiles#data-source for more information."
)


def directive_problem(key: str, kind: str) -> str | None:
    """Tinybird's message for a directive a ``kind`` ("datasource" or "pipe") file cannot hold."""
    if key == "SETTINGS":
        return _SETTINGS_HINT
    if kind == "datasource" and key not in DATASOURCE_DIRECTIVES:
        return f"{key} is not a valid option in datasource files."
    return None


# Column modifiers Tinybird refuses, in the order its schema parser meets them.
_REFUSED_MODIFIERS = (
    (re.compile(r"\sMATERIALIZED\s", re.I), "MATERIALIZED columns are not supported"),
    (re.compile(r"\sALIAS\s", re.I), "ALIAS columns are not supported"),
    (re.compile(r"\sNOT\s+NULL(\s|$)", re.I), "NOT NULL column syntax not supported"),
    (re.compile(r"\sNULL(\s|$)", re.I), "NULL column syntax not supported"),
    (re.compile(r"\sTTL\s", re.I), "column TTL is not supported"),
)

_DEFAULT_NULL = re.compile(r"\bDEFAULT\s+NULL\b", re.I)


def column_problem(col_type: str, rest: str) -> str | None:
    """Tinybird's message for a column it refuses: ``col_type`` is the declared type, ``rest`` the
    column's text after its name with quoted parts (JSONPath, string literals) blanked out."""
    rest = _DEFAULT_NULL.sub("DEFAULT x", rest)  # `DEFAULT NULL` is a default, not NULL syntax
    for pattern, message in _REFUSED_MODIFIERS:
        if pattern.search(" " + rest + " "):
            return message
    lowered = col_type.lower()
    if "boolean" in lowered:
        return "Boolean type is not supported"
    if "datetime64" in lowered and "datetime64(" not in lowered:
        return "DateTime64 type without precision is not supported"
    if col_type in ("Int", "UInt"):
        return f"Precision is mandatory for {col_type} types"
    return None


def engine_problems(
    engine: str,
    ver: str | None,
    sorting_key: str | None,
    columns: dict[str, str],
) -> str | None:
    """Tinybird's message for an engine set-up it refuses (``columns``: name -> type)."""
    if engine.lower() not in {e.lower() for e in ENGINES}:
        return f"Engine {engine} is not supported, supported engines include: {', '.join(ENGINES)}"
    is_replacing = engine.lower() == "replacingmergetree"
    if is_replacing and not sorting_key:
        return "Missing required option 'sorting_key'"
    if ver is not None and ver not in columns:
        reason = f"'{ver}' column is not present in schema"
        return f"Invalid value '{ver}' for parameter 'engine_ver', reason: {reason}"
    if is_replacing and ver and sorting_key and ver in sorting_key:
        return (
            f"ENGINE_VER column '{ver}' cannot be included in the sorting key for ReplacingMergeTree. "
            "Including the version column in the sorting key prevents deduplication because rows with "
            "different versions will have different sorting keys and won't be considered duplicates. The "
            "sorting key should define the record identity (what makes it unique), while ENGINE_VER tracks "
            "which version to keep."
        )
    for name in _sorting_key_names(sorting_key or ""):
        if columns.get(name, "").startswith("Nullable("):
            return (
                f"Sorting key contains nullable column '{name}'. "
                "Nullable columns cannot be used in sorting keys."
            )
    return None


def _sorting_key_names(sorting_key: str) -> list[str]:
    """The bare column names of a sorting key (expressions are left to ClickHouse)."""
    names = []
    for part in sorting_key.split(","):
        part = part.strip().strip("`")
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part):
            names.append(part)
    return names


# Names the Pipes API takes for itself: Tinybird refuses a template parameter of these names.
_OWN_PARAMETERS = ("format", "q")
_PARAMETER_USE = re.compile(r"\b(?:[A-Z][A-Za-z0-9]*|defined|column|columns|symbol)\(\s*([A-Za-z_]\w*)")


def parameter_problem(sql: str) -> str | None:
    """Tinybird's message for a template node naming a parameter ``q`` or ``format``."""
    if not sql.lstrip().startswith("%"):
        return None
    for number, line in enumerate(sql.splitlines(), start=1):
        for match in _PARAMETER_USE.finditer(line):
            if match.group(1) in _OWN_PARAMETERS:
                return f'"{match.group(1)}" can not be used as a variable name, line {number}'
    return None
