"""The Tinybird-compatible local server as a real subprocess on loopback, for tests.

Fixtures (session-scoped: chDB start-up is not free):

- ``tinybird_server``: one server for the session; ``.url``, ``.token``, ``.headers``.
- ``tinybird_server_factory(**options)``: another server, e.g. ``fail_rate=0.3``, ``throttle=5``,
  ``retry_after=0``, ``seed=1``, ``datafiles=[path]``, ``data=path``. All are stopped at the end.

Every server object can ``stop()`` and ``restart()`` (same port, same ``--data`` folder).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

START_TIMEOUT = 60.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class TinybirdServer:
    data: Path
    token: str
    port: int
    options: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "auditbird",
            "tinybird",
            "local",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--token",
            self.token,
            "--data",
            str(self.data),
            *self.options,
        ]

    def start(self) -> TinybirdServer:
        self.log = self.data.parent / f"{self.data.name}-{self.port}.log"
        env = dict(os.environ)
        src = str(Path(__file__).resolve().parents[2] / "src")
        env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"tinybird local exited ({self.process.returncode}):\n{self.log.read_text()}"
                )
            try:
                if httpx.get(f"{self.url}/tokens", timeout=1.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"tinybird local did not answer in {START_TIMEOUT}s:\n{self.log.read_text()}")

    def stop(self) -> None:
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def restart(self) -> TinybirdServer:
        self.stop()
        return self.start()


def _options(
    fail_rate: float | None = None,
    throttle: int | None = None,
    retry_after: int | None = None,
    seed: int | None = None,
    datafiles: list[Path] | None = None,
) -> list[str]:
    out: list[str] = []
    if fail_rate is not None:
        out += ["--fail-rate", str(fail_rate)]
    if throttle is not None:
        out += ["--throttle", str(throttle)]
    if retry_after is not None:
        out += ["--retry-after", str(retry_after)]
    if seed is not None:
        out += ["--seed", str(seed)]
    for folder in datafiles or []:
        out += ["--datafiles", str(folder)]
    return out


def _require_local_extra() -> None:
    pytest.importorskip("chdb", reason="the local Tinybird server needs chDB (auditbird[local])")
    pytest.importorskip("tornado", reason="the local Tinybird server needs Tornado (auditbird[local])")


@pytest.fixture(scope="session")
def tinybird_server_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., TinybirdServer]]:
    """``make(fail_rate=None, throttle=None, retry_after=None, seed=None, datafiles=None, data=None)``."""
    _require_local_extra()
    started: list[TinybirdServer] = []

    def make(data: Path | None = None, token: str | None = None, **options: Any) -> TinybirdServer:
        folder = data or tmp_path_factory.mktemp("tinybird-local") / "data"
        server = TinybirdServer(
            data=folder,
            token=token or f"p.test-{uuid.uuid4().hex}",
            port=_free_port(),
            options=_options(**options),
        )
        started.append(server)
        return server.start()

    yield make
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def tinybird_server(tinybird_server_factory: Callable[..., TinybirdServer]) -> TinybirdServer:
    """One local Tinybird server for the whole session (no faults)."""
    return tinybird_server_factory()
