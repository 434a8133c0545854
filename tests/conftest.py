"""Shared fixtures. The store contract suite runs over every store kind in STORE_KINDS.

A store kind is a fixture named ``<kind>_log_factory`` returning ``make_log(workspace) ->
AuditLog``: logs made by one factory share one underlying store. Kinds whose fixtures live
in their own plugin modules (tests/plugins/) join by adding their name here.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from auditbird import ActionRegistry, AuditLog, default_registry

pytest_plugins = [
    "tests.plugins.sqlite",
    "tests.plugins.tinybird_server",
    "tests.plugins.tinybird_clis",
    "tests.plugins.tinybird_store",
    "tests.plugins.service",
    "tests.plugins.browser",
    "tests.plugins.tinybird_clis",
    "tests.plugins.postgres",
]

STORE_KINDS = ["sqlite", "tinybird", "service", "memory", "postgres"]

MakeLog = Callable[..., AuditLog]


@pytest.fixture(params=STORE_KINDS)
def make_log(request: pytest.FixtureRequest) -> MakeLog:
    """``make_log(workspace="", **options)`` over the store kind under test."""
    factory: MakeLog = request.getfixturevalue(f"{request.param}_log_factory")
    return factory


@pytest.fixture(autouse=True)
def _isolated_default_registry() -> Iterator[None]:
    """A test that imports a catalog (registering its actions process-wide) must not change
    what the next test validates: put the default registry and the catalog modules back."""
    saved = (
        dict(default_registry._models),
        dict(default_registry._latest),
        dict(default_registry._upcasters),
    )
    modules = {name for name in sys.modules if name.startswith("auditbird.catalog.")}
    yield
    for target, source in zip(
        (default_registry._models, default_registry._latest, default_registry._upcasters), saved, strict=True
    ):
        target.clear()
        target.update(source)  # type: ignore[attr-defined]
    for name in [n for n in sys.modules if n.startswith("auditbird.catalog.") and n not in modules]:
        del sys.modules[name]
        package = sys.modules.get("auditbird.catalog")
        if package is not None and hasattr(package, name.rpartition(".")[2]):
            delattr(package, name.rpartition(".")[2])


@pytest.fixture
def memory_log_factory() -> MakeLog:
    """The in-memory store of ``auditbird.testing``: logs from one factory share one store."""
    from auditbird.testing import MemoryStore

    store = MemoryStore()

    def make_log(workspace: str = "", **options: object) -> AuditLog:
        return AuditLog(store, workspace=workspace, **options)  # type: ignore[arg-type]

    return make_log


@pytest.fixture
def registry() -> ActionRegistry:
    """A private registry, so tests never leak actions into each other."""
    return ActionRegistry()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / f"audit-{uuid.uuid4().hex[:8]}.db"


@pytest.fixture
def sqlite_log(db_path: Path) -> Iterator[AuditLog]:
    with AuditLog(f"sqlite:///{db_path}") as log:
        yield log
