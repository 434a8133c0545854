"""A throwaway PostgreSQL cluster for the tests: initdb + pg_ctl in a temp directory.

Fixtures:

- ``postgres_server`` (session): one cluster on a free loopback port, its unix socket in its own
  temp directory, ``fsync`` on (durability is what the store promises). Stopped and deleted at
  the end of the session. ``.url(dbname)``, ``.create_database()``, ``.admin()``, ``.stop()``,
  ``.start()``.
- ``postgres_url``: a fresh, empty database for one test (dropped afterwards).
- ``postgres_log_factory``: the store kind ``postgres`` for tests/test_store_contract.py.

PostgreSQL refuses to run as root, and the tests run as root in CI: the cluster belongs to the
``postgres`` user (or ``nobody``) and initdb/pg_ctl run through ``runuser``. Two test runs on one
machine never clash: each has its own directory (``mkdtemp``) and port.
"""

from __future__ import annotations

import gc
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

SUPERUSER = "auditbird"
START_TIMEOUT = 60


def _bindir() -> Path:
    """The newest installed server's bin directory (Debian keeps it off PATH)."""
    for found in sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), reverse=True):
        return found.parent
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).resolve().parent
    pytest.fail("PostgreSQL is not installed: run scripts/test-deps.d/50-postgresql.sh (make test does)")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _os_user() -> str | None:
    """Whom to run the server as: ourselves unless we are root (PostgreSQL refuses root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    pytest.fail("running as root and there is no `postgres` or `nobody` user to run PostgreSQL as")


@dataclass
class PostgresServer:
    root: Path
    port: int
    bindir: Path
    user: str | None

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    def url(self, dbname: str = "postgres", user: str = SUPERUSER, password: str | None = None) -> str:
        auth = user if password is None else f"{user}:{password}"
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{dbname}"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        timeout = START_TIMEOUT + 30
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            for path in (self.root, self.socket_dir):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        done = self._run(
            "initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"
        )
        if done.returncode != 0:
            pytest.fail(f"initdb failed: {done.stderr or done.stdout}")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                "\n# auditbird tests\n"
                f"port = {self.port}\n"
                "listen_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.socket_dir}'\n"
                "fsync = on\n"
                "synchronous_commit = on\n"
                "max_connections = 200\n"
                "log_min_messages = warning\n"
            )

    def start(self) -> None:
        done = self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w",
            "-t", str(START_TIMEOUT), "start",
        )  # fmt: skip
        if done.returncode != 0:
            log = (self.root / "server.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"pg_ctl start failed: {done.stderr or done.stdout}\n{log}")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def admin(self, dbname: str = "postgres") -> Any:
        """An autocommit superuser connection."""
        import psycopg

        return psycopg.connect(self.url(dbname), autocommit=True)

    def create_database(self, owner: str = SUPERUSER) -> str:
        name = f"t_{uuid.uuid4().hex[:16]}"
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}" OWNER "{owner}"')
        return name

    def drop_database(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    root = Path(tempfile.mkdtemp(prefix="auditbird-pg-"))
    server: PostgresServer | None = None
    try:
        for _attempt in range(3):  # a port taken between picking and binding: pick again
            shutil.rmtree(root / "data", ignore_errors=True)
            server = PostgresServer(root, _free_port(), _bindir(), _os_user())
            server.init()
            try:
                server.start()
                break
            except RuntimeError as exc:
                error = exc
        else:
            pytest.fail(str(error))
        yield server
    finally:
        if server is not None:
            server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database on the session's cluster (dropped afterwards)."""
    name = postgres_server.create_database()
    yield postgres_server.url(name)
    # The test's logs are garbage now, but some only in reference cycles: collected here, so
    # their subject-key store leaves the process's keyring (it holds stores weakly) before its
    # database goes. Else the next test's look-up of an erased key asks it too, cannot connect
    # to a dropped database, and reads [erased] as unreadable ("the key store is down").
    gc.collect()
    postgres_server.drop_database(name)


@pytest.fixture
def postgres_log_factory(postgres_url: str) -> Iterator[Any]:
    """The ``postgres`` store kind: logs from one factory share one store (one database)."""
    from auditbird import AuditLog
    from auditbird.stores.postgres import PostgresStore

    store = PostgresStore(postgres_url)

    def make_log(workspace: str = "", **options: Any) -> AuditLog:
        return AuditLog(store, workspace=workspace, **options)

    yield make_log
    store.close()
