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


def _make_plan(target: str) -> str:
    """What `make TARGET` would run from scratch (`-n -B`: print every command, run none)."""
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        ["make", "-n", "-B", target], cwd=root, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_make_run_installs_only_the_service_extra() -> None:
    plan = _make_plan("run")
    assert "-e '.[service]'" in plan
    assert ".[dev]" not in plan and ".[all]" not in plan
    assert "auditbird.demo" in plan


def test_make_test_still_installs_every_dev_dependency_after_make_run() -> None:
    # Distinct stamps: the service-only venv of `make run` does not satisfy `make test`.
    run_plan, test_plan = _make_plan("run"), _make_plan("test")
    run_stamp = [line for line in run_plan.splitlines() if line.startswith("touch ")]
    test_stamp = [line for line in test_plan.splitlines() if line.startswith("touch ")]
    assert "-e '.[dev]'" in test_plan
    assert run_stamp and test_stamp and set(run_stamp).isdisjoint(test_stamp)
