"""The buffered Tinybird writer's spool deleted or replaced under it (a tmp cleaner, an
``rm -rf`` of a cache directory): the writer must notice and fail loudly, never acknowledge a
write into an unlinked file that the next crash would take with it.

End to end against the local Tinybird server (``tests.plugins.tinybird_server``).
"""

from __future__ import annotations

import logging
import shutil
import socket
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from auditbird import AuditError, Query, Tinybird
from auditbird.codec import encode
from auditbird.event import Event
from auditbird.stores.tinybird import TinybirdStore

pytestmark = pytest.mark.timeout(120)


def store(url: str, token: str, spool: Path, **options: Any) -> TinybirdStore:
    options.setdefault("max_retries", 1)  # a server that is down: give up quickly
    return TinybirdStore(Tinybird(token=token, host=url), buffered=True, spool_path=spool, **options)


def rows(ws: str, n: int, start: int = 0) -> list[Any]:
    return [encode(Event(id=f"s:{i}", action="a.b", workspace=ws)) for i in range(start, start + n)]


def dead_url() -> str:
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    return f"http://127.0.0.1:{port}"


def remove(spool: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{spool}{suffix}").unlink(missing_ok=True)


def server_uids(server: Any, ws: str) -> set[str]:
    with TinybirdStore(Tinybird(token=server.token, host=server.url)) as reader:
        return {r.uid for r in reader.query(Query(workspace=ws, limit=None))}


def test_a_deleted_spool_refuses_writes_loudly(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spool = tmp_path / "a.spool"
    ws = f"w{uuid.uuid4().hex[:8]}"
    s = store(dead_url(), "p.token", spool, flush_interval=60, batch_rows=1000)
    s.append(rows(ws, 5))
    remove(spool)
    with caplog.at_level(logging.ERROR, logger="auditbird.spool"), pytest.raises(AuditError) as caught:
        s.append(rows(ws, 1, 5))
    message = str(caught.value)
    assert str(spool) in message and "deleted" in message
    assert any("deleted" in r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)
    assert not spool.exists()  # nothing was written to a new file by the refused append
    with pytest.raises(AuditError, match="deleted"):  # and it stays refused
        s.append(rows(ws, 1, 6))
    with pytest.raises(AuditError) as closing:  # close cannot send them either (server down)
        s.close()
    assert "kept in the spool" not in str(closing.value)  # that would be a lie: the file is gone
    assert "lost" in str(closing.value) and "5 row(s)" in str(closing.value)


def test_a_replaced_spool_is_noticed(tmp_path: Path) -> None:
    spool = tmp_path / "b.spool"
    ws = f"w{uuid.uuid4().hex[:8]}"
    s = store(dead_url(), "p.token", spool, flush_interval=60, batch_rows=1000)
    s.append(rows(ws, 2))
    other = tmp_path / "copy.spool"
    for suffix in ("", "-wal"):
        shutil.copyfile(f"{spool}{suffix}", f"{other}{suffix}")
    remove(spool)
    for suffix in ("", "-wal"):  # same path, another file (a restore from a backup, another process)
        Path(f"{other}{suffix}").rename(f"{spool}{suffix}")
    with pytest.raises(AuditError, match="replaced"):
        s.append(rows(ws, 1, 2))
    with pytest.raises(AuditError):
        s.close()
    with sqlite3.connect(spool) as conn:  # the new file holds only what it held
        assert conn.execute("SELECT count(*) FROM pending").fetchone()[0] == 2


def test_rows_spooled_before_the_deletion_are_still_sent_then_flush_raises(
    tinybird_server: Any, tmp_path: Path
) -> None:
    spool = tmp_path / "c.spool"
    ws = f"w{uuid.uuid4().hex[:8]}"
    s = store(tinybird_server.url, tinybird_server.token, spool, flush_interval=60, batch_rows=1000)
    sent = rows(ws, 7)
    s.append(sent)
    remove(spool)
    with pytest.raises(AuditError, match="deleted"):
        s.flush()  # sends the 7 rows the open file still holds, then says what happened
    assert server_uids(tinybird_server, ws) == {r.uid for r in sent}
    s.close()  # everything was delivered: nothing to report twice


def test_the_background_thread_logs_a_deleted_spool(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spool = tmp_path / "d.spool"
    s = store(dead_url(), "p.token", spool, flush_interval=0.05, batch_rows=1000)
    with caplog.at_level(logging.ERROR, logger="auditbird.spool"):
        remove(spool)
        deadline = time.monotonic() + 30
        while not any("deleted" in r.getMessage() for r in caplog.records) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert any("deleted" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)
    with pytest.raises(AuditError):
        s.append(rows("w", 1))
    s.close()


def test_a_new_spool_is_private_to_its_user(tmp_path: Path) -> None:
    spool = tmp_path / "e.spool"
    s = store(dead_url(), "p.token", spool, flush_interval=60, batch_rows=1000)
    s.append(rows("w", 1))
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    with pytest.raises(AuditError):
        s.close()  # the server is down: the row stays in the spool
    assert modes == {"e.spool": 0o600, "e.spool-wal": 0o600, "e.spool-shm": 0o600}
