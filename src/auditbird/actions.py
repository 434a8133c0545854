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

    def register(self, name: str, model: type[BaseModel], version: int = 1, *, replace: bool = False) -> None:
        """Register ``model`` as the metadata schema of ``name`` at ``version``.

        Registering the same schema again is harmless (a module imported twice). Another schema
        for an ``(action, version)`` that already has one raises :class:`ValueError` naming both,
        unless ``replace=True``: an application that also imports a catalog must not replace
        the catalog's schema without saying so.
        """
        if not _ACTION_RE.match(name):
            raise ValueError(f"action {name!r} is not in `resource.verb` form (e.g. 'monitor.down')")
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise TypeError(f"the schema of {name!r} must be a pydantic BaseModel subclass")
        if version < 1:
            raise ValueError(f"version of {name!r} must be >= 1, got {version}")
        with self._lock:
            existing = self._models.get((name, version))
            if existing is not None and not replace and not _same_schema(existing, model):
                raise ValueError(
                    f"{name!r} version {version} is already registered to {_where(existing)}; "
                    f"{_where(model)} is another schema. Register it as version {version + 1}, "
                    f"or pass replace=True (@action({name!r}, replace=True)) to replace it on purpose"
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


def _where(model: type[BaseModel]) -> str:
    return f"{model.__module__}.{model.__qualname__}"


def _same_schema(a: type[BaseModel], b: type[BaseModel]) -> bool:
    """The same class, the same class imported again, or a class with an identical JSON Schema."""
    if a is b or _where(a) == _where(b):
        return True
    try:
        return _shape(a) == _shape(b)
    except Exception:  # a schema pydantic cannot render: only identity counts then
        return False


def _shape(model: type[BaseModel]) -> Any:
    schema = model.model_json_schema()
    schema.pop("title", None)  # the class name is not part of the shape
    schema.pop("description", None)
    return schema


default_registry = ActionRegistry()


def action(
    name: str, *, version: int = 1, registry: ActionRegistry | None = None, replace: bool = False
) -> Callable[[M], M]:
    """Class decorator registering a pydantic model as the metadata schema of ``name``.

    Raises :class:`ValueError` if ``name`` already has another schema at ``version`` (for
    example from ``auditbird.catalog.openstatus``), unless ``replace=True``.
    """

    def decorate(model: M) -> M:
        (registry or default_registry).register(name, model, version, replace=replace)
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
