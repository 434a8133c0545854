"""The server's own secret: a random key in a file beside the key file, readable by its owner only.

It keys the uids the service derives from an ``Idempotency-Key`` (HMAC of the workspace and the
key): stable for one server (a retry after a restart, or on another ``--workers`` process, gets
the same uid), and unpredictable to anyone without the file, so no tenant can compute, and claim
or probe, the uid of another tenant's request. ``audit.keys.db`` -> ``audit.keys.secret``.
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

__all__ = ["secret_path_for", "load_or_create_secret"]

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
