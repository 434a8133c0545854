"""`python -m auditbird.demo` (what `make run` runs) without the service extra says what to install
before doing anything, instead of seeding the database and then crashing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# Run the demo as if uvicorn were not installed (a plain `pip install auditbird`).
WITHOUT_UVICORN = (
    "import runpy, sys; sys.modules['uvicorn'] = None; sys.argv = ['demo', *sys.argv[1:]]; "
    "runpy.run_module('auditbird.demo', run_name='__main__')"
)


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AUDITBIRD_URL": f"sqlite:///{tmp_path / 'demo.db'}"}
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_UVICORN, *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_demo_without_the_service_extra_stops_first_and_says_what_to_install(tmp_path: Path) -> None:
    result = run(tmp_path)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "pip install 'auditbird[service]'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "demo.db").exists()  # nothing half-done


def test_the_demo_without_serving_needs_no_extra(tmp_path: Path) -> None:
    result = run(tmp_path, "--no-serve")
    assert result.returncode == 0, result.stderr
    assert "monitor.recovered" in result.stdout
