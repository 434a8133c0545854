"""Files only the server's user may read: the key file (SQLite) and the server's secret.

(For keys in SQLite, :mod:`.keys_sqlite`. Keys in PostgreSQL keep both secrets in the database,
:mod:`.keys_postgres`, where every replica reads the same ones.)

Both are created with mode 0600 from their first byte (``os.open(..., 0o600)``), never created
world-readable and narrowed afterwards: a ``chmod`` after the fact leaves a window in which
another local user can open the file and keep the descriptor. SQLite gives its ``-wal`` and
``-shm`` files the mode of the database file, so they are private too.

The server's secret (a random key in ``audit.keys.secret`` beside ``audit.keys.db``) keys
the uids the service derives from an ``Idempotency-Key`` (HMAC of the workspace and the key):
stable for one server (a retry after a restart, or on another ``--workers`` process, gets the
same uid), and unpredictable to anyone without the file, so no tenant can compute, and claim
or probe, the uid of another tenant's request.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
import stat
import time
from pathlib import Path

__all__ = ["secret_path_for", "load_or_create_secret", "connect_private"]

_BYTES = 32


def secret_path_for(keys_path: str | os.PathLike[str]) -> Path:
    path = Path(keys_path)
    return path.with_name(path.stem + ".secret")


def load_or_create_secret(path: str | os.PathLike[str]) -> bytes:
    """The secret in ``path``; made (0600 from the first byte, never readable by others even
    for an instant) if the file does not exist. Several processes starting at once agree: one
    creates it (``O_EXCL``), the others read what it wrote."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read(path)
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_hex(_BYTES) + "\n")
        out.flush()
        os.fsync(out.fileno())
    return _read(path)


def _read(path: Path) -> bytes:
    for _ in range(100):  # another process may have created it and not yet written it
        text = path.read_text().strip()
        if len(text) == 2 * _BYTES:
            return bytes.fromhex(text)
        time.sleep(0.01)
    raise RuntimeError(
        f"{path} does not hold a server secret ({2 * _BYTES} hex digits); "
        "delete it to make a new one (uids derived from Idempotency-Keys will change)"
    )


def connect_private(
    path: str | os.PathLike[str], *, timeout: float = 30.0, check_same_thread: bool = False
) -> sqlite3.Connection:
    """An autocommit ``sqlite3`` connection to a file that is (or is first created) 0600."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Never open and close an existing file here: closing any descriptor of a file drops every
    # POSIX lock this process holds on it, including those of SQLite connections already open
    # on it (the viewer-link store opens the key file the service already has open).
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for name in (path.name, path.name + "-wal", path.name + "-shm"):
        # A file an older version made world-readable: narrow it (by name, no descriptor).
        with contextlib.suppress(FileNotFoundError):
            if stat.S_IMODE(os.stat(path.with_name(name)).st_mode) & 0o077:
                os.chmod(path.with_name(name), 0o600)
    return sqlite3.connect(path, isolation_level=None, check_same_thread=check_same_thread, timeout=timeout)
