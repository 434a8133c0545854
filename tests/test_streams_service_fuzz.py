"""The OpenAPI-driven fuzzer (schemathesis) against ``/v1/streams`` on a live server, with an
admin key: whatever it sends, no answer is a server error."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.plugins.service import LiveServer

pytestmark = pytest.mark.slow  # a fuzzer run against a live server


@pytest.mark.timeout(300)
def test_schemathesis_finds_no_server_errors_in_the_streams_api(
    tmp_path: Path, start_service: Callable[..., LiveServer]
) -> None:
    server = start_service(tmp_path / "server")
    key = server.mint("fuzz", "admin")
    st = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or "schemathesis"
    result = subprocess.run(
        [st, "run", f"{server.url}/openapi.json"]
        + ["--checks", "not_a_server_error", "--max-examples", "30", "--seed", "1"]
        + ["--phases", "examples,coverage,fuzzing", "--workers", "2", "--no-color"]
        + ["--header", f"Authorization: Bearer {key}", "--request-timeout", "30"]
        + ["--suppress-health-check", "all", "--generation-with-security-parameters", "false"]
        + ["--include-path-regex", r"^/v1/streams"],
        capture_output=True,
        text=True,
        timeout=280,
        cwd=tmp_path,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert "Authentication failed" not in output, output[-3000:]
    assert " passed" in output and "failed" not in output.split("SUMMARY")[-1]
