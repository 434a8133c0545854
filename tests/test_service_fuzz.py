"""An OpenAPI-driven fuzzer (schemathesis) against the live server: zero server errors."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.plugins.service import LiveServer

pytestmark = pytest.mark.slow  # a fuzzer run against a live server: minutes on 2 cores


@pytest.mark.timeout(300)
def test_schemathesis_finds_no_server_errors(live_server: LiveServer, tmp_path: Path) -> None:
    key = live_server.mint("fuzz", "admin")
    st = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or "schemathesis"
    result = subprocess.run(
        [st, "run", f"{live_server.url}/openapi.json"]
        + ["--checks", "not_a_server_error", "--max-examples", "40", "--seed", "1"]
        + ["--phases", "examples,coverage,fuzzing", "--workers", "2", "--no-color"]
        + ["--header", f"Authorization: Bearer {key}", "--request-timeout", "30"]
        + ["--suppress-health-check", "all", "--generation-with-security-parameters", "false"]
        # This API's operations; the viewer's (e.g. its endless event stream) are not ours to fuzz.
        + ["--include-path-regex", r"^/(v1/(events|events/\{uid\}|actions|export)|healthz|metrics)$"],
        capture_output=True,
        text=True,
        timeout=280,
        cwd=tmp_path,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert "Authentication failed" not in output, output[-3000:]
    assert " passed" in output and "failed" not in output.split("SUMMARY")[-1]
