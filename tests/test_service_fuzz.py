"""An OpenAPI-driven fuzzer (schemathesis) against the live server: zero server errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fuzz_support import assert_no_server_errors
from tests.plugins.service import LiveServer

pytestmark = pytest.mark.slow  # a fuzzer run against a live server: minutes on 2 cores


@pytest.mark.timeout(300)
def test_schemathesis_finds_no_server_errors(live_server: LiveServer, tmp_path: Path) -> None:
    key = live_server.mint("fuzz", "admin")
    # This API's operations; the viewer's (e.g. its endless event stream) are not ours to fuzz.
    paths = r"^/(v1/(events|events/\{uid\}|actions|export)|healthz|metrics)$"
    assert_no_server_errors(live_server.url, key, paths, examples=40, cwd=tmp_path)
