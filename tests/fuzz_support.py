"""Running schemathesis (an OpenAPI-driven fuzzer nobody here wrote) against a live server."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path


def assert_no_server_errors(url: str, key: str, paths: str, *, examples: int, cwd: Path) -> None:
    """Fuzz the operations whose path matches the regex ``paths`` with ``key``; no answer may be
    a server error, and the key must have been accepted (a fuzzer stuck at 401 proves nothing)."""
    st = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or "schemathesis"
    result = subprocess.run(
        [st, "run", f"{url}/openapi.json"]
        + ["--checks", "not_a_server_error", "--max-examples", str(examples), "--seed", "1"]
        + ["--phases", "examples,coverage,fuzzing", "--workers", "2", "--no-color"]
        + ["--header", f"Authorization: Bearer {key}", "--request-timeout", "30"]
        + ["--suppress-health-check", "all", "--generation-with-security-parameters", "false"]
        + ["--include-path-regex", paths],
        capture_output=True,
        text=True,
        timeout=280,
        cwd=cwd,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert "Authentication failed" not in output, output[-3000:]
    assert " passed" in output and "failed" not in output.split("SUMMARY")[-1]
