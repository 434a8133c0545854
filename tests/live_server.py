"""Real `auditbird serve` processes on free loopback ports, for tests that talk HTTP to one."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

EXE = shutil.which("auditbird", path=str(Path(sys.executable).parent)) or "auditbird"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_up(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode} before answering {url}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"no answer from {url} within {timeout:.0f}s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGINT (uvicorn's Ctrl-C) to the process group, then kill if it lingers."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)


@contextmanager
def serving(
    *args: str, cwd: Path, env: Mapping[str, str] | None = None, port: int | None = None
) -> Iterator[str]:
    """``auditbird [args...] serve --port N`` in ``cwd``; yields its base URL, stops it after."""
    port = port or free_port()
    cmd = [EXE, *args, "serve", "--port", str(port)]
    log = (cwd / f"serve-{port}.log").open("wb")
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=dict(env or os.environ),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{base}/healthz", proc)
        yield base
    finally:
        stop(proc)
        log.close()
