"""The Typer app, its global options, and how the CLI reports bad input (one line, exit 2)."""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass, field
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from .._errors import AuditError, AuditValidationError
from ..log import AuditLog
from ..stores import default_url

app = typer.Typer(
    name="auditbird",
    help="Typed, immutable audit events: publish, read and serve them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)


@dataclass
class Settings:
    store: str = field(default_factory=default_url)
    workspace: str = ""
    strict: bool = False
    actions: list[str] = field(default_factory=list)  # --actions modules, as given (for `serve`)

    def open_log(self) -> AuditLog:
        try:
            return AuditLog(self.store, workspace=self.workspace, strict=self.strict)
        except (ValueError, AuditError) as exc:
            fail(str(exc))


settings = Settings()


def fail(message: str | BaseException, code: int = 2) -> NoReturn:
    """Print the reason (one line per problem) and exit: 2 for bad input, 1 otherwise."""
    lines = (
        [str(p) for p in message.problems]
        if isinstance(message, AuditValidationError)
        else str(message).splitlines() or [""]
    )
    # Plain writes, not rich: one problem stays on one line whatever the terminal width.
    sys.stderr.write("".join(f"error: {line}\n" for line in lines))
    raise typer.Exit(code)


def load_actions(modules: list[str]) -> None:
    """Import the application's action definitions so the CLI validates as it does."""
    for spec in modules:
        for name in filter(None, (s.strip() for s in spec.split(","))):
            if os.getcwd() not in sys.path:
                sys.path.insert(0, os.getcwd())
            try:
                importlib.import_module(name)
            except ImportError as exc:
                fail(f"--actions {name}: cannot import it ({exc}); is it on PYTHONPATH?")


@app.callback()
def _global(
    store: Annotated[
        str | None,
        typer.Option("--store", envvar="AUDITBIRD_URL", help="Store URL; default sqlite:///./auditbird.db"),
    ] = None,
    actions: Annotated[
        list[str] | None,
        typer.Option(
            "--actions",
            envvar="AUDITBIRD_ACTIONS",
            help="Module(s) defining the application's actions, e.g. auditbird.catalog.openstatus",
        ),
    ] = None,
    workspace: Annotated[str, typer.Option("--workspace", "-w", help="Tenant to read and write")] = "",
    strict: Annotated[bool, typer.Option("--strict", help="Reject unregistered actions")] = False,
) -> None:
    if store:
        settings.store = store
    settings.workspace = workspace
    settings.strict = strict
    settings.actions = list(actions or [])
    load_actions(settings.actions)
