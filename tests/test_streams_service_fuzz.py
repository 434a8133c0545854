"""The OpenAPI-driven fuzzer (schemathesis) against ``/v1/streams`` on a live server, with an
admin key: whatever it sends, no answer is a server error."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fuzz_support import assert_no_server_errors
from tests.plugins.service import LiveServer

pytestmark = pytest.mark.slow  # a fuzzer run against a live server


@pytest.mark.timeout(300)
def test_schemathesis_finds_no_server_errors_in_the_streams_api(
    tmp_path: Path, start_service: Callable[..., LiveServer]
) -> None:
    server = start_service(tmp_path / "server")
    key = server.mint("fuzz", "admin")
    assert_no_server_errors(server.url, key, r"^/v1/streams", examples=30, cwd=tmp_path)
