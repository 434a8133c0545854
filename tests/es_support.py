"""Support for the event-sourcing tests: the OpenStatus catalog in a private registry.

Importing a catalog registers its actions in the process-wide default registry, and other test
modules publish ``monitor.down`` with free-form metadata. So the event-sourcing tests take the
catalog from here: it is imported, copied into a private registry (``OPENSTATUS``), and then
the default registry and ``sys.modules`` are put back as they were, so a later
``import auditbird.catalog.openstatus`` elsewhere registers its actions as usual.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from auditbird import ActionRegistry, default_registry

_MODULES = (
    "auditbird.catalog.openstatus",
    "auditbird.catalog.openstatus_lifecycle",
    "auditbird.catalog.openstatus_projections",
)


def _load_catalog() -> tuple[ActionRegistry, dict[str, Any]]:
    already = {name for name in _MODULES if name in sys.modules}
    saved = (
        dict(default_registry._models),
        dict(default_registry._latest),
        dict(default_registry._upcasters),
    )
    modules = {name: importlib.import_module(name) for name in _MODULES}
    private = ActionRegistry()
    for name, version, model in default_registry.items():
        if model.__module__ in _MODULES:
            private.register(name, model, version)
    models, latest, upcasters = saved
    with default_registry._lock:
        for target, source in zip(
            (default_registry._models, default_registry._latest, default_registry._upcasters),
            (models, latest, upcasters),
            strict=True,
        ):
            target.clear()
            target.update(source)  # type: ignore[attr-defined]
    for name in _MODULES:
        if name not in already:
            del sys.modules[name]
            package, _, attr = name.rpartition(".")
            if hasattr(sys.modules[package], attr):
                delattr(sys.modules[package], attr)
    return private, modules


OPENSTATUS, _catalog = _load_catalog()
openstatus = _catalog["auditbird.catalog.openstatus"]
MonitorFailed = openstatus.MonitorFailed
MonitorRecovered = openstatus.MonitorRecovered
ChangeSet = _catalog["auditbird.catalog.openstatus_lifecycle"].ChangeSet
MonitorState = _catalog["auditbird.catalog.openstatus_projections"].MonitorState
IncidentState = _catalog["auditbird.catalog.openstatus_projections"].IncidentState
