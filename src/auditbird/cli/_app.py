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
    help="Typed, immutable audit events: publish, read and serve them.\n\n"
    "Example: auditbird --store sqlite:///audit.db log monitor:1",
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


# Examples for commands whose module does not show one in its docstring; `add_examples` puts
# each in its command's --help (epilog). Keyed by the command's path under `auditbird`.
EXAMPLES: dict[tuple[str, ...], str] = {
    ("tinybird", "local"): "auditbird tinybird local --port 7181 --token dev --data ./tb-data",
    ("tinybird", "datafiles"): "auditbird tinybird datafiles tinybird/",
    ("tinybird", "migrate"): "auditbird tinybird migrate --help   (see docs/ for a full run)",
    ("relay",): "auditbird relay --from sqlite:///app.db --to tinybird+http://dev@127.0.0.1:7181 --follow",
    ("check",): "auditbird --store sqlite:///audit.db check",
}


def _has_example(text: str | None) -> bool:
    return bool(text) and "Example" in str(text)


def add_examples(root: typer.Typer, path: tuple[str, ...] = ()) -> None:
    """Give every command without an example in its help the one in :data:`EXAMPLES`."""
    for info in root.registered_commands:
        name = info.name or (info.callback.__name__.replace("_", "-") if info.callback else "")
        example = EXAMPLES.get((*path, name))
        if example and not _has_example(info.help or (info.callback and info.callback.__doc__)):
            info.epilog = info.epilog or f"Example: {example}"
    for group in root.registered_groups:
        if group.typer_instance is not None and group.name:
            add_examples(group.typer_instance, (*path, group.name))


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
