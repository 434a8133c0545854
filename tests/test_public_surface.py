"""The public surface explains itself: ``__all__`` pinned, docstrings on every public name of
the facade, tier and testing modules, their ``>>>`` examples executed, and layers that point
one way (stores are a leaf: they never import the codec or the facade)."""

from __future__ import annotations

import ast
import doctest
import importlib
import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest

import auditbird

SRC = Path(auditbird.__file__).parent

PUBLIC = [
    "AuditLog",
    "AsyncAuditLog",
    "Tinybird",
    "action",
    "upcaster",
    "Personal",
    "emit",
    "ActionRegistry",
    "default_registry",
    "Event",
    "Actor",
    "Target",
    "Page",
    "Histogram",
    "Filters",
    "Recorded",
    "Projection",
    "on",
    "Query",
    "Limits",
    "open_store",
    "AuditError",
    "AuditValidationError",
    "AuthenticationError",
    "StoreUnavailable",
    "ConflictError",
    "UnsupportedOperation",
    "NotFound",
    "ProjectionError",
    "Problem",
    "__version__",
]

# The modules of issue 12 (the facades, tiers, event sourcing and testing).
DOCUMENTED = [
    "auditbird",
    "auditbird._errors",
    "auditbird._facade",
    "auditbird._ops",
    "auditbird.async_log",
    "auditbird.changes",
    "auditbird.codec",
    "auditbird.emit",
    "auditbird.history",
    "auditbird.log",
    "auditbird.projections",
    "auditbird.row",
    "auditbird.snapshots",
    "auditbird.sourcing",
    "auditbird.subscriptions",
    "auditbird.stores.base",
    "auditbird.stores.capabilities",
    "auditbird.stores.sqlite_snapshots",
    "auditbird.stores.threaded",
    "auditbird.testing",
    "auditbird.testing.memory",
    "auditbird.testing.contract",
    "auditbird.testing.contract.asynchronous",
]


def test_the_public_names_are_pinned() -> None:
    assert auditbird.__all__ == PUBLIC
    for name in PUBLIC:
        assert getattr(auditbird, name) is not None


def _public_objects(module_name: str) -> list[tuple[str, object]]:
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", [n for n in vars(module) if not n.startswith("_")])
    out: list[tuple[str, object]] = []
    for name in names:
        obj = getattr(module, name)
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        out.append((f"{module_name}.{name}", obj))
        if inspect.isclass(obj) and obj.__module__ == module_name:
            for attr, value in vars(obj).items():
                if attr.startswith("_") or not (inspect.isfunction(value) or isinstance(value, property)):
                    continue
                if attr.startswith("test_"):
                    continue  # contract tests: their names are their documentation
                out.append((f"{module_name}.{name}.{attr}", value))
    return out


@pytest.mark.parametrize("module_name", DOCUMENTED)
def test_every_public_name_has_a_docstring(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert (module.__doc__ or "").strip(), module_name
    missing = [name for name, obj in _public_objects(module_name) if not (inspect.getdoc(obj) or "").strip()]
    assert missing == []


@pytest.mark.parametrize("module_name", DOCUMENTED)
def test_the_examples_run(module_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # an example that writes ./auditbird.db writes it here
    module = importlib.import_module(module_name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def test_the_facade_modules_show_examples() -> None:
    with_examples = [m for m in DOCUMENTED if doctest.DocTestFinder().find(importlib.import_module(m))]
    tested = sum(
        len(t.examples)
        for m in with_examples
        for t in doctest.DocTestFinder().find(importlib.import_module(m))
    )
    assert len(with_examples) >= 15 and tested >= 60, (len(with_examples), tested)


def _imports(path: Path) -> set[str]:
    """The auditbird modules a source file imports (relative imports resolved)."""
    package = ".".join(path.relative_to(SRC.parent).with_suffix("").parts)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("auditbird")}


NEUTRAL = ("auditbird._errors", "auditbird.query", "auditbird.row", "auditbird.event", "auditbird.snapshots")


def test_stores_are_a_leaf_layer() -> None:
    allowed = (*NEUTRAL, "auditbird.stores", "auditbird.tinybird.config")
    for path in sorted((SRC / "stores").glob("*.py")):
        wrong = {m for m in _imports(path) if not m.startswith(allowed)}
        assert wrong == set(), f"{path.name} imports {sorted(wrong)}"


def test_the_codec_and_neutral_modules_do_not_import_stores() -> None:
    for name in ("codec.py", "row.py", "query.py", "event.py", "snapshots.py", "actions.py"):
        wrong = {m for m in _imports(SRC / name) if m.startswith(("auditbird.stores", "auditbird.log"))}
        assert wrong == set(), f"{name} imports {sorted(wrong)}"


@pytest.mark.parametrize(
    "first",
    ["auditbird.codec", "auditbird.stores.service", "auditbird.stores.capabilities", "auditbird.testing"],
)
def test_each_layer_imports_on_its_own(first: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(SRC.parent)}
    done = subprocess.run(
        [sys.executable, "-c", f"import {first}"], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr


def test_testing_imports_without_pytest() -> None:
    code = "import sys; sys.modules['pytest'] = None; import auditbird, auditbird.testing.contract"
    env = {**os.environ, "PYTHONPATH": str(SRC.parent)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr


def test_capabilities_are_checked_in_one_place() -> None:
    sniffs = []
    for path in SRC.rglob("*.py"):
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            if "hasattr(" in line or ("getattr(" in line and "store" in line):
                sniffs.append(f"{path.relative_to(SRC)}:{lineno}")
    # capabilities.py is the one checking place; the template sandbox is not about stores.
    left = ("stores/capabilities.py", "tinybird/local/template.py")
    assert [s for s in sniffs if not s.startswith(left)] == []


def test_the_service_client_sends_the_encoded_columns_as_they_are() -> None:
    """The client validates and encodes once (in the facade) and splices the row's JSON
    columns into the body: the same bytes as parsing and re-serialising them, without it."""
    from auditbird import default_registry
    from auditbird.codec import encode
    from auditbird.row import dumps, row_to_json, row_to_wire
    from auditbird.validation import validate_event

    events = [
        {"id": "monitor:1", "action": "monitor.down"},
        {
            "id": 'quote"d:é',
            "action": "a.b",
            "actor": {"id": "u1", "name": "Zoë", "type": "user"},
            "targets": [{"id": "1", "name": "monitor"}, {"id": "2", "type": "incident"}],
            "metadata": {"nested": {"list": [1, 2.5, None, True]}, "emoji": "🚨", "esc": "a\\nb\u2028"},
            "workspace": "acme",
            "version": 3,
        },
    ]
    for data in events:
        row = encode(validate_event(data, default_registry))
        assert row_to_wire(row) == dumps(row_to_json(row))


def test_the_tier_table_of_architecture_md_is_what_the_stores_declare() -> None:
    from auditbird.stores import capabilities
    from auditbird.stores.service import ServiceStore
    from auditbird.stores.sqlite import SQLiteStore
    from auditbird.stores.tinybird import TinybirdStore
    from auditbird.testing import MemoryStore

    stores = [SQLiteStore, TinybirdStore, ServiceStore, MemoryStore]
    text = (SRC.parent.parent / "ARCHITECTURE.md").read_text()
    rows = [line.split("|")[1:-1] for line in text.splitlines() if line.startswith("| `")]
    assert len(rows) == 8
    for cells in rows:
        tier = getattr(capabilities, cells[0].strip().strip("`"))
        marked = [cell.strip() == "✓" for cell in cells[2:]]
        assert marked == [tier in cls.__mro__ or tier is capabilities.Store for cls in stores], cells[0]


def test_a_third_party_store_runs_the_suite_with_plain_unittest(tmp_path: Path) -> None:
    (tmp_path / "test_my_store.py").write_text(
        "from auditbird.testing import MemoryStore\n"
        "from auditbird.testing.contract import StreamStoreTestCase, StoreTestCase\n\n"
        "class MyStore(MemoryStore):\n"
        "    pass\n\n"
        "class TestMyStore(StreamStoreTestCase):\n"
        "    def make_store(self):\n"
        "        return MyStore()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC.parent)}
    code = (
        "import sys; sys.modules['pytest'] = None; import unittest; "
        "unittest.main(module=None, argv=['x', 'test_my_store'])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
    )
    assert done.returncode == 0, done.stderr
    ran = int(done.stderr.split("Ran ")[1].split()[0])
    # The abstract base imported into the module is skipped, the subclass runs base + stream tests.
    assert ran >= 25 and "skipped" in done.stderr, done.stderr


def test_emit_uses_only_public_names_of_the_sqlite_store() -> None:
    tree = ast.parse((SRC / "emit.py").read_text())
    imported = [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("stores.sqlite")
        for alias in node.names
    ]
    assert imported and all(not name.startswith("_") for name in imported), imported
    assert "MIGRATIONS" not in imported  # the store's own migrate(), not a copy of its loop
