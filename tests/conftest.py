"""Shared fixtures. The store contract suite runs over every store kind in STORE_KINDS.

A store kind is a fixture named ``<kind>_log_factory`` returning ``make_log(workspace) ->
AuditLog``: logs made by one factory share one underlying store. Kinds whose fixtures live
in their own plugin modules (tests/plugins/) join by adding their name here.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from auditbird import ActionRegistry, AuditLog

pytest_plugins = [
    "tests.plugins.sqlite",
    "tests.plugins.tinybird_server",
    "tests.plugins.tinybird_store",
]

STORE_KINDS = ["sqlite", "tinybird"]

MakeLog = Callable[..., AuditLog]


@pytest.fixture(params=STORE_KINDS)
def make_log(request: pytest.FixtureRequest) -> MakeLog:
    """``make_log(workspace="", **options)`` over the store kind under test."""
    factory: MakeLog = request.getfixturevalue(f"{request.param}_log_factory")
    return factory


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
