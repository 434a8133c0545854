"""The ``auditbird`` command line. It calls the library; it never touches a store or SQL."""

from __future__ import annotations

import importlib
import sys

from .._errors import AuditError
from . import core  # noqa: F401 - registers publish, log, query, actions
from ._app import add_examples, app, fail

__all__ = ["app", "main", "fail"]

# Command groups that live in their own modules; each module exposes `register(app)`.
_GROUPS = (
    "auditbird.cli.tinybird",
    "auditbird.cli.service",
    "auditbird.cli.viewer",  # after .service: it adds `keys viewer-link`
    "auditbird.cli.relay",
    "auditbird.cli.maintenance",
    "auditbird.cli.streams",
    "auditbird.cli.mcp",
    "auditbird.cli.provable",
    "auditbird.cli.retention",
    "auditbird.cli.erase",
)

for _name in _GROUPS:
    try:
        _module = importlib.import_module(_name)
    except ModuleNotFoundError as _exc:  # a group whose module is not part of this build
        if _exc.name != _name:
            raise
        continue
    _module.register(app)
add_examples(app)


def main() -> None:
    try:
        sys.exit(app(standalone_mode=True))
    except AuditError as exc:  # a store failure in any command (disk full, missing log): no traceback
        sys.stderr.write("".join(f"error: {line}\n" for line in str(exc).splitlines() or [""]))
        sys.exit(1)
