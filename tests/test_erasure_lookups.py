"""Key look-ups per read are bounded (review finding 7): a kid that no key store has (erased,
or never made) is asked once per process, not once per value and read; a key store that failed
is not asked again for a second, so a read of many values while it is down fails fast."""

from __future__ import annotations

import gc
import socket
import weakref
from pathlib import Path
from typing import Any

from auditbird import AuditLog
from auditbird.erasure import ERASED, UNREADABLE, erase_subject
from auditbird.erasure.keys import register_postgres

from .erasure_support import invited_registry as _registry


class _Counting:
    """Counts the calls to a real key store's ``lookup``, which still answers."""

    def __init__(self, keys: Any) -> None:
        self.calls = 0
        self._lookup = keys.lookup
        keys.lookup = self

    def __call__(self, kid: str) -> Any:
        self.calls += 1
        return self._lookup(kid)


def _erased_log(tmp_path: Path, events: int) -> AuditLog:
    log = AuditLog(f"sqlite:///{tmp_path / 'audit.db'}", workspace="acme", registry=_registry())
    log.publish_many(
        [
            {
                "id": "org:1",
                "action": "user.invited",
                "actor": {"id": "42", "name": "Ada"},
                "metadata": {"email": f"ada{i}@example.org"},
            }
            for i in range(events)
        ]
    )
    erase_subject(log, "user:42")
    return log


def test_an_erased_key_is_asked_for_once_not_per_value(tmp_path: Path) -> None:
    log = _erased_log(tmp_path, 20)
    counting = _Counting(log._subject_keys)
    for _ in range(2):
        read = [e for e in log.iter_events() if e.action == "user.invited"]
        assert len(read) == 20 and {e.actor.name for e in read} == {ERASED}
        assert {e.metadata.email for e in read} == {ERASED}  # type: ignore[union-attr]
    assert counting.calls == 1  # 80 sealed values read, one kid
    log.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_key_store_that_is_down_is_asked_once_per_second_not_per_value(tmp_path: Path) -> None:
    log = _erased_log(tmp_path, 20)
    down = register_postgres(f"postgresql://u@127.0.0.1:{_closed_port()}/db")  # refuses at once
    counting = _Counting(down)
    gone = weakref.ref(down)
    try:
        read = [e for e in log.iter_events() if e.action == "user.invited"]
        assert {e.actor.name for e in read} == {UNREADABLE}  # not known to be erased: unreadable
        assert all("could not be read" in (e.schema_error or "") for e in read)
        assert counting.calls == 1  # 40 sealed values, one attempt
    finally:
        down.close()
        del down, counting
        gc.collect()  # the keyring holds it weakly: gone with the last reference
        log.close()
    assert gone() is None  # nothing (the down-list included) keeps it for later tests
