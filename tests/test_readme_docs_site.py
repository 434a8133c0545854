"""The documentation site builds offline, strictly, from the README, guides, docstrings and code."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# What a page loads by itself (scripts, styles, images, frames); plain links may go anywhere.
LOADED = re.compile(
    r"""<(?:script|img|iframe|source)\b[^>]*\bsrc="([^"]+)"|<link\b[^>]*\bhref="([^"]+)"[^>]*>"""
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def test_the_site_has_the_readme_the_stores_and_the_references(site: Path) -> None:
    index = (site / "index.html").read_text()
    assert "Quick start" in index and "pip install" in index
    for store, name in (
        ("sqlite", "SQLiteStore"),
        ("tinybird", "TinybirdStore"),
        ("service", "ServiceStore"),
    ):
        assert name in (site / "stores" / store / "index.html").read_text()
    python = (site / "reference" / "python" / "index.html").read_text()
    assert "publish_audit_log" in python and "AuditValidationError" in python


def test_the_cli_reference_is_generated_from_every_command(site: Path) -> None:
    import typer

    from auditbird.cli import app

    page = re.sub(r"<[^>]+>", "", (site / "reference" / "cli" / "index.html").read_text())
    root = typer.main.get_command(app)
    for name, cmd in root.commands.items():
        assert f"auditbird {name}" in page
        for sub in getattr(cmd, "commands", {}):
            assert f"auditbird {name} {sub}" in page
    # Each command's examples (from its --help) appear as code.
    assert "auditbird keys create --store sqlite:///audit.db --workspace acme --scope admin" in page


def test_the_http_reference_is_the_openapi_document(site: Path) -> None:
    spec = json.loads((site / "openapi.json").read_text())
    page = (site / "reference" / "http" / "index.html").read_text()
    assert spec["paths"]
    for path, methods in spec["paths"].items():
        for method in methods:
            assert f"{method.upper()} {path}" in page


def test_no_page_loads_anything_from_the_network(site: Path) -> None:
    external = []
    for page in site.rglob("*.html"):
        for src, href in LOADED.findall(page.read_text()):
            url = src or href
            if url.startswith(("http:", "https:", "//")):
                external.append((page.relative_to(site), url))
    assert external == []


def test_guides_in_docs_are_listed_without_editing_the_config(site: Path) -> None:
    guides = [p.stem for p in (ROOT / "docs").glob("*.md") if p.stem != "index"]
    index = (site / "index.html").read_text()
    for guide in guides:
        assert f"{guide}/" in index, guide
