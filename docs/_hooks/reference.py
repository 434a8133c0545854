"""MkDocs hook: the CLI reference from the typer commands, the HTTP reference from OpenAPI.

Both are generated at build time from the code itself, so the site cannot drift from it:
``reference/cli.md`` and ``reference/http.md`` hold a placeholder comment that is replaced
here, and ``openapi.json`` is added to the site.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

CLI_MARK = "<!-- generated: cli-reference -->"
HTTP_MARK = "<!-- generated: http-reference -->"

_openapi: dict[str, Any] | None = None


# -- CLI ---------------------------------------------------------------------------------


def _commands(cmd: Any, path: tuple[str, ...]) -> list[tuple[tuple[str, ...], Any]]:
    """Every command under ``cmd`` with its path, groups first (typer ships its own click)."""
    found = [(path, cmd)]
    for name, sub in sorted(getattr(cmd, "commands", {}).items()):
        found.extend(_commands(sub, (*path, name)))
    return found


def _param_row(param: Any) -> str:
    names = ", ".join(f"`{o}`" for o in [*param.opts, *param.secondary_opts])
    kind = "argument" if param.param_type_name == "argument" else "option"
    help_text = (getattr(param, "help", None) or "").replace("|", "\\|").replace("\n", " ")
    envvar = getattr(param, "envvar", None)
    if envvar:
        help_text += f" (env: `{envvar}`)"
    default = param.default
    shown = "" if default in (None, False, (), []) or callable(default) else f"`{default}`"
    required = "yes" if param.required else ""
    return f"| {names} | {kind} | {help_text} | {shown} | {required} |"


def cli_reference() -> str:
    import typer

    from auditbird.cli import app

    root = typer.main.get_command(app)
    out: list[str] = []
    for path, cmd in _commands(root, ()):
        name = " ".join(("auditbird", *path))
        level = "#" * min(2 + len(path), 4) if path else "##"
        out.append(f"{level} `{name}`\n")
        text = (cmd.help or "").strip()
        if text:
            out.append(_fenced_examples(text) + "\n")
        if cmd.epilog:
            out.append(_fenced_examples(cmd.epilog.strip()) + "\n")
        params = [p for p in cmd.params if p.name != "help"]
        if params:
            out.append("| name | kind | meaning | default | required |")
            out.append("|---|---|---|---|---|")
            out.extend(_param_row(p) for p in params)
            out.append("")
        subs = getattr(cmd, "commands", {})
        if subs:
            out.append("Commands: " + ", ".join(f"`{s}`" for s in sorted(subs)) + "\n")
    return "\n".join(out)


def _fenced_examples(text: str) -> str:
    """Lines ``Example: auditbird ...`` as shell blocks; the rest as prose."""
    lines = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("Example: "):
            lines.append(f"\n```sh\n{stripped.removeprefix('Example: ')}\n```\n")
        else:
            lines.append(stripped.replace("\b", ""))
    return "\n".join(lines)


# -- HTTP --------------------------------------------------------------------------------


def openapi() -> dict[str, Any]:
    global _openapi
    if _openapi is None:
        from auditbird.service import create_app

        with tempfile.TemporaryDirectory() as tmp:
            app = create_app(f"sqlite:///{Path(tmp) / 'docs.db'}", keys=Path(tmp) / "docs.keys.db")
            _openapi = app.openapi()
            app.state.auditbird.keys.close()
    return _openapi


def _schema_name(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " or ".join(_schema_name(s) for s in schema["anyOf"])
    if schema.get("type") == "array":
        return f"list of {_schema_name(schema.get('items', {}))}"
    return str(schema.get("type", "any"))


def http_reference() -> str:
    doc = openapi()
    out = [doc.get("info", {}).get("description", "").strip(), ""]
    for path, methods in doc.get("paths", {}).items():
        for method, op in methods.items():
            out.append(f"## `{method.upper()} {path}`\n")
            if op.get("summary"):
                out.append(f"**{op['summary']}**\n")
            if op.get("description"):
                out.append(op["description"].strip() + "\n")
            params = op.get("parameters", [])
            if params:
                out.append("| parameter | in | type | required | meaning |")
                out.append("|---|---|---|---|---|")
                for p in params:
                    desc = (p.get("description") or "").replace("\n", " ").replace("|", "\\|")
                    kind = _schema_name(p.get("schema", {}))
                    req = "yes" if p.get("required") else ""
                    out.append(f"| `{p['name']}` | {p['in']} | {kind} | {req} | {desc} |")
                out.append("")
            body = op.get("requestBody", {}).get("content", {})
            if body:
                out.append("Body: " + ", ".join(f"`{t}`" for t in body) + "\n")
            responses = op.get("responses", {})
            if responses:
                out.append("| status | meaning |")
                out.append("|---|---|")
                for status, answer in responses.items():
                    desc = (answer.get("description") or "").replace("\n", " ").replace("|", "\\|")
                    out.append(f"| {status} | {desc} |")
                out.append("")
    schemas = doc.get("components", {}).get("schemas", {})
    if schemas:
        out.append("## Schemas\n")
        for name, schema in schemas.items():
            out.append(f"### `{name}`\n")
            fields = schema.get("properties", {})
            required = set(schema.get("required", []))
            if fields:
                out.append("| field | type | required |")
                out.append("|---|---|---|")
                for field, spec in fields.items():
                    out.append(f"| `{field}` | {_schema_name(spec)} | {'yes' if field in required else ''} |")
                out.append("")
    return "\n".join(out)


# -- MkDocs events -----------------------------------------------------------------------


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if CLI_MARK in markdown:
        markdown = markdown.replace(CLI_MARK, cli_reference())
    if HTTP_MARK in markdown:
        markdown = markdown.replace(HTTP_MARK, http_reference())
    return markdown


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    files.append(File.generated(config, "openapi.json", content=json.dumps(openapi(), indent=2) + "\n"))
    return files
