"""The service store kind: a real ``auditbird serve`` (uvicorn subprocess) on loopback.

Fixtures:

- ``live_server`` (session): one server over a SQLite file, with the default rate limit off.
  ``live_server.mint(workspace, scope)`` makes a key; ``live_server.client(key)`` an httpx
  client for it.
- ``service_log_factory``: ``make_log(workspace="", **options) -> AuditLog`` through
  :class:`~auditbird.stores.service.ServiceStore`, each log with an admin key of its workspace.
  The store contract expects a fresh store per test, so the factory empties the server's file
  first (a test-only reset; the service itself has no way to delete events).
- ``start_server(db, **env)``: start another server (own file, limits, rate) for one module.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from auditbird import AuditLog
from auditbird.service.keys import KeyStore

SERVE = "from auditbird.cli import main; main()"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    url: str
    db_path: Path
    keys_path: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    _keys: KeyStore | None = field(default=None, repr=False)

    @property
    def keys(self) -> KeyStore:
        if self._keys is None:
            self._keys = KeyStore(self.keys_path)
        return self._keys

    def mint(
        self, workspace: str = "", scope: str = "admin", *, rate: float | None = None, name: str = ""
    ) -> str:
        return self.keys.create(workspace=workspace, scope=scope, rate=rate, name=name).secret

    def client(self, key: str | None = None, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, **kwargs)

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self._keys is not None:
            self._keys.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(directory: Path, *, db_name: str = "service.db", **env: str) -> LiveServer:
    """``auditbird serve`` on a free port over ``directory/db_name``; waits for /healthz."""
    directory.mkdir(parents=True, exist_ok=True)
    db_path = directory / db_name
    keys_path = directory / (db_path.stem + ".keys.db")
    port = free_port()
    log_path = directory / f"server-{port}.log"
    environ = {**os.environ, "AUDITBIRD_RATE_LIMIT": "0", **env}
    environ.pop("AUDITBIRD_ACTIONS", None)
    with open(log_path, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", SERVE, "--store", f"sqlite:///{db_path}", "serve", "--port", str(port)]
            + ["--keys", str(keys_path), "--log-level", "warning"],
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = LiveServer(f"http://127.0.0.1:{port}", db_path, keys_path, process, log_path)
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited: {log_path.read_text()}")
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"the server did not start: {log_path.read_text()}")
        time.sleep(0.05)


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server(tmp_path_factory.mktemp("service"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def start_service() -> Iterator[Callable[..., LiveServer]]:
    started: list[LiveServer] = []

    def start(directory: Path, **env: str) -> LiveServer:
        server = start_server(directory, **env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def wipe_events(db_path: Path) -> None:
    """Test-only reset of the server's event file between contract tests."""
    conn = sqlite3.connect(db_path, timeout=30)
    try:
        with conn:
            conn.execute("DELETE FROM audit_target")
            conn.execute("DELETE FROM audit_log")
    finally:
        conn.close()


@pytest.fixture
def service_log_factory(live_server: LiveServer) -> Iterator[Callable[..., AuditLog]]:
    wipe_events(live_server.db_path)
    logs: list[AuditLog] = []
    keys: dict[str, str] = {}

    def make_log(workspace: str = "", **options: Any) -> AuditLog:
        if workspace not in keys:
            keys[workspace] = live_server.mint(workspace, "admin", name="contract")
        log = AuditLog(live_server.url, api_key=keys[workspace], workspace=workspace, **options)
        logs.append(log)
        return log

    yield make_log
    for log in logs:
        log.close()
