"""Tinybird's own command line tools, installed by scripts/test-deps.d/20-tinybird-clis.sh.

Fixtures (session-scoped; paths, never skipped: a missing venv fails with what to run):

- ``tb_cli_python`` / ``tb_cli_bin``: the current CLI's venv python and its ``tb`` (PyPI ``tinybird``).
- ``tb_classic_python`` / ``tb_classic_bin``: the same for the Classic CLI (PyPI ``tinybird-cli``).
- ``tinybird_parse(python, *paths)``: run both CLIs' datafile parsers (tinybird_parse_script.py) in
  that venv; one ``{"path", "ok", "error", "warnings"}`` dict per path.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CURRENT_VENV = ROOT / ".cache" / "tb-venv"
CLASSIC_VENV = ROOT / ".cache" / "tb-classic-venv"
PARSE_SCRIPT = Path(__file__).with_name("tinybird_parse_script.py")


def _existing(path: Path, what: str) -> Path:
    if not path.exists():
        pytest.fail(
            f"{what} is not installed ({path} is missing): run `make test`, or "
            "`sh scripts/test-deps.d/20-tinybird-clis.sh`, which installs both Tinybird CLIs into .cache/",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def tb_cli_python() -> Path:
    return _existing(CURRENT_VENV / "bin" / "python", "Tinybird's current CLI (PyPI `tinybird`)")


@pytest.fixture(scope="session")
def tb_cli_bin(tb_cli_python: Path) -> Path:
    return _existing(CURRENT_VENV / "bin" / "tb", "Tinybird's current CLI (PyPI `tinybird`)")


@pytest.fixture(scope="session")
def tb_classic_python() -> Path:
    return _existing(CLASSIC_VENV / "bin" / "python", "Tinybird's Classic CLI (PyPI `tinybird-cli`)")


@pytest.fixture(scope="session")
def tb_classic_bin(tb_classic_python: Path) -> Path:
    return _existing(CLASSIC_VENV / "bin" / "tb", "Tinybird's Classic CLI (PyPI `tinybird-cli`)")


def parse_with(python: Path, *paths: Path) -> list[dict[str, Any]]:
    """Tinybird's own parsers (in the venv of ``python``) over ``paths``."""
    done = subprocess.run(
        [str(python), str(PARSE_SCRIPT), *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"the parse script failed ({done.returncode}):\n{done.stderr}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


@pytest.fixture(scope="session")
def tinybird_parse() -> Callable[..., list[dict[str, Any]]]:
    return parse_with
