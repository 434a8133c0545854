"""Tinybird's own CLIs, installed by scripts/test-deps.d/20-tinybird-clis.sh into git-ignored venvs.

Fixtures (session-scoped; a test is skipped when its venv is missing, e.g. the install script has
not run):

- ``tb_cli_python`` / ``tb_cli_bin``: the current CLI (``pip install tinybird``), in .cache/tb-venv.
- ``tb_classic_python`` / ``tb_classic_bin``: the Classic CLI (``pip install tinybird-cli``), in
  .cache/tb-classic-venv.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INSTALL = "sh scripts/test-deps.d/20-tinybird-clis.sh"


def _venv_file(venv: str, name: str) -> Path:
    path = ROOT / ".cache" / venv / "bin" / name
    if not path.exists():
        pytest.skip(f"{path} is missing: run `{INSTALL}` (make test does)")
    return path


@pytest.fixture(scope="session")
def tb_cli_python() -> Path:
    return _venv_file("tb-venv", "python")


@pytest.fixture(scope="session")
def tb_cli_bin() -> Path:
    return _venv_file("tb-venv", "tb")


@pytest.fixture(scope="session")
def tb_classic_python() -> Path:
    return _venv_file("tb-classic-venv", "python")


@pytest.fixture(scope="session")
def tb_classic_bin() -> Path:
    return _venv_file("tb-classic-venv", "tb")
