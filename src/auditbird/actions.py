"""Action schemas: a pydantic model per (action, version), registered at run time.

The TypeScript original needed a hard-coded discriminated union; here an application
registers its own actions, and the model *is* the schema: validation, JSON Schema and
OpenAPI all come from it.

    @action("monitor.down")
    class MonitorDown(BaseModel):
        region: str
        statusCode: int
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel

from .event import _ACTION_RE

__all__ = ["ActionRegistry", "action", "upcaster", "default_registry"]

M = TypeVar("M", bound=type[BaseModel])
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class ActionRegistry:
    """Maps ``(action, version)`` to a metadata model, and ``(action, from_version)`` to an upcaster."""

    def __init__(self) -> None:
        self._models: dict[tuple[str, int], type[BaseModel]] = {}
        self._latest: dict[str, int] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}
        self._lock = threading.Lock()

    def register(self, name: str, model: type[BaseModel], version: int = 1) -> None:
        if not _ACTION_RE.match(name):
            raise ValueError(f"action {name!r} is not in `resource.verb` form (e.g. 'monitor.down')")
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise TypeError(f"the schema of {name!r} must be a pydantic BaseModel subclass")
        if version < 1:
            raise ValueError(f"version of {name!r} must be >= 1, got {version}")
        with self._lock:
            existing = self._models.get((name, version))
            # Re-importing a module re-registers the same class name; a different shape is a bug.
            if existing is not None and existing.__qualname__ != model.__qualname__:
                raise ValueError(
                    f"{name!r} version {version} is already registered to "
                    f"{existing.__qualname__}; register the new shape as version {version + 1}"
                )
            self._models[(name, version)] = model
            self._latest[name] = max(version, self._latest.get(name, 0))

    def register_upcaster(self, name: str, from_version: int, fn: Upcaster) -> None:
        """``fn`` turns metadata of ``from_version`` into metadata of ``from_version + 1``."""
        with self._lock:
            self._upcasters[(name, from_version)] = fn

    def get(self, name: str, version: int = 1) -> type[BaseModel] | None:
        return self._models.get((name, version))

    def latest_version(self, name: str) -> int | None:
        return self._latest.get(name)

    def upcaster(self, name: str, from_version: int) -> Upcaster | None:
        return self._upcasters.get((name, from_version))

    def __contains__(self, name: object) -> bool:
        return name in self._latest

    def names(self) -> list[str]:
        return sorted(self._latest)

    def items(self) -> list[tuple[str, int, type[BaseModel]]]:
        return sorted((n, v, m) for (n, v), m in self._models.items())

    def json_schemas(self) -> dict[str, dict[str, Any]]:
        """``{"monitor.down": {"1": <JSON Schema>, ...}, ...}`` for the CLI, API and viewer."""
        out: dict[str, dict[str, Any]] = {}
        for name, version, model in self.items():
            out.setdefault(name, {})[str(version)] = model.model_json_schema()
        return out


default_registry = ActionRegistry()


def action(name: str, *, version: int = 1, registry: ActionRegistry | None = None) -> Callable[[M], M]:
    """Class decorator registering a pydantic model as the metadata schema of ``name``."""

    def decorate(model: M) -> M:
        (registry or default_registry).register(name, model, version)
        return model

    return decorate


def upcaster(
    name: str, *, from_version: int, registry: ActionRegistry | None = None
) -> Callable[[Upcaster], Upcaster]:
    """Function decorator: ``fn(metadata_v_n) -> metadata_v_n+1``, applied on read."""

    def decorate(fn: Upcaster) -> Upcaster:
        (registry or default_registry).register_upcaster(name, from_version, fn)
        return fn

    return decorate
