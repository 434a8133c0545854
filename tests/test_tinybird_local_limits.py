"""Bounded memory per Events API request, whatever the compression ratio (issue #10, item 4).

A small gzip body of rows that all go to quarantine once became one INSERT string of GBs
(1 KB of gzip: +2.8 GB and 12.7 s). The server's peak resident memory (VmHWM, read from /proc) is
measured around such requests: its growth must stay far below what the body inflates to times
the per-row cost it once had.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.plugins.tinybird_server import TinybirdServer

MB = 1024 * 1024


def peak_rss(server: TinybirdServer) -> int:
    assert server.process is not None
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc status")


def post_gzip(server: TinybirdServer, text: bytes) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v0/events",
        params={"name": "audit_log", "wait": "true"},
        content=gzip.compress(text, 9),
        headers={**server.headers, "Content-Encoding": "gzip"},
        timeout=300,
    )


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc")
def test_a_small_gzip_of_bad_rows_costs_bounded_memory(
    tinybird_server_factory: Callable[..., TinybirdServer],
) -> None:
    server = tinybird_server_factory()
    warm = post_gzip(server, b"1\n" * 1000)  # chDB's first inserts allocate what they keep
    assert warm.json() == {"successful_rows": 0, "quarantined_rows": 1000}
    before = peak_rss(server)
    body = b"1\n" * 300_000  # 600 KB of rows that all go to quarantine: about 1 KB of gzip
    resp = post_gzip(server, body)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"successful_rows": 0, "quarantined_rows": 300_000}
    grown = peak_rss(server) - before
    # Once ~3.5 KB per quarantined row (about 1 GB here); chunked, it is what one chunk costs.
    assert grown < 250 * MB, f"peak RSS grew by {grown // MB} MB for a {len(body)} byte body"


def test_a_gzip_body_inflating_past_the_cap_is_413_and_stores_nothing(
    tinybird_server: TinybirdServer,
) -> None:
    bomb = b"\n" * (101 * MB)
    resp = post_gzip(tinybird_server, bomb)
    assert resp.status_code == 413
    assert "inflates beyond" in resp.json()["error"]


def test_a_truncated_gzip_body_is_400(tinybird_server: TinybirdServer) -> None:
    body = gzip.compress(b'{"uid": "x"}\n' * 1000)[:-20]
    resp = httpx.post(
        f"{tinybird_server.url}/v0/events",
        params={"name": "audit_log", "wait": "true"},
        content=body,
        headers={**tinybird_server.headers, "Content-Encoding": "gzip"},
    )
    assert resp.status_code == 400 and "gzip" in resp.json()["error"]


def test_a_line_longer_than_the_row_limit_is_413(tinybird_server: TinybirdServer) -> None:
    resp = post_gzip(tinybird_server, b'{"uid": "' + b"x" * (11 * MB) + b'"}\n')
    assert resp.status_code == 413 and "longer than" in resp.json()["error"]
